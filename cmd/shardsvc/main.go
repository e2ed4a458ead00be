// Command shardsvc runs the reference shard server as its own process: a
// shardsvc.World of simulated players behind a twophase.Participant with a durable
// journal, serving the coordinator's commands over NATS JetStream, with an optional
// load driver that proposes cross-shard matches through the client SDK. Its command
// line is cobra's, shared with coordinator through cmd/internal/cli: exit 0 success,
// 1 failure, 2 usage error.
package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/procs"
)

func main() {
	procs.Apply(os.Getenv) // Ps to spare while the journal fsyncs (internal/procs)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return cli.Execute(context.Background(), newRootCmd(), args, stdout, stderr)
}

// newRootCmd is shardsvc itself (the server) with its version and completion
// commands; every run builds a fresh one.
func newRootCmd() *cobra.Command {
	var o options
	fs, ld := flags(&o, io.Discard)
	c := &cobra.Command{
		Use:   "shardsvc --id ID [flags]",
		Short: "Run the reference shard server",
		Long: "Run the reference shard server: simulated players behind the participant SDK, serving the\n" +
			"coordinator over NATS, with /status and /metrics on --admin-addr and an optional load\n" +
			"driver (--propose-rate). The journal's directory is created if missing.\n\n" +
			"Every setting is a flag, an environment variable (" + envPrefix + "_<FLAG>, shown with each flag)\n" +
			"or a `key = value` line of the --config file; a flag wins over its variable, which wins\n" +
			"over the file, which wins over the default.",
		Example: "  shardsvc --id s1 --journal ./data/s1.journal --nats-url nats://127.0.0.1:4222 --admin-addr 127.0.0.1:9091\n" +
			"  shardsvc --id s1 --nats-url nats://127.0.0.1:4222 --propose-rate 20 --peer-shards s2\n" +
			"  shardsvc version -o json",
		Version: cli.ReadBuildInfo("shardsvc").String(),
		Args:    cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ld.LookupEnv = os.LookupEnv
			if err := o.finish(fs, ld); err != nil {
				return &cli.UsageError{Err: err}
			}
			return cli.Exit(serveShard(o, c.ErrOrStderr()))
		},
	}
	c.SetVersionTemplate("{{.Version}}\n")
	cli.AddGoFlags(c.Flags(), fs, cli.GoFlagsOptions{Env: ld.EnvName})
	c.AddCommand(cli.NewVersionCmd("shardsvc"))
	return c
}
