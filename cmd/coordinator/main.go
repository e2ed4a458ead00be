// Command coordinator is the shardmatch binary: one subcommand per file, each wiring
// packages together (coordinator, shardsvc, policy) and doing nothing else. The command
// tree is cobra's (root.go); cmd/internal/cli runs it and maps its outcome to the exit
// code: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"io"
	"os"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/procs"
)

func main() {
	procs.Apply(os.Getenv) // Ps to spare while journals and Raft fsync (internal/procs)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRootCmd(), args, stdout, stderr)
}
