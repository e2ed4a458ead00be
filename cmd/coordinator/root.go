package main

import (
	"context"
	"flag"
	"io"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// newRootCmd builds the whole command tree; every run builds a fresh one, so flag
// values never leak from one run (or test) to the next.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "coordinator",
		Short: "shardmatch: a Raft-backed cross-server matchmaking coordinator",
		Long: "coordinator runs and operates shardmatch: a production node (serve), a whole deployment in one\n" +
			"process (dev), the embedded NATS server (nats), and the commands that read and operate a\n" +
			"running cluster through its nodes' admin APIs (status, txn, lease, shard, cluster, leader,\n" +
			"deadletter, snapshot). Those find the cluster in --endpoints or $" + envEndpoints + ".",
		Example: "  coordinator dev --duration 20s\n" +
			"  coordinator status --endpoints http://127.0.0.1:8081,http://127.0.0.1:8082\n" +
			"  coordinator txn list --state stuck -o json",
		Version: versionString(),
	}
	cli.Group(root)
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddGroup(&cobra.Group{ID: groupRun, Title: "Run:"}, &cobra.Group{ID: groupOperate, Title: "Read and operate a cluster:"},
		&cobra.Group{ID: groupTools, Title: "Tools:"})
	add := func(group string, cs ...*cobra.Command) {
		for _, c := range cs {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupRun, newServeCmd(), newDevCmd(), newNatsCmd(), newPrestopCmd())
	add(groupOperate, newStatusCmd(), newTxnCmd(), newDeadletterCmd(), newLeaseCmd(), newShardCmd(), newClusterCmd(),
		newLeaderCmd(), newSnapshotCmd())
	add(groupTools, newBenchCmd(), newChaosCmd(), newConformanceCmd(), newPolicyCmd(), newSigningKeyCmd(), newNatsAuthCmd(), newTLSCertsCmd(),
		newVersionCmd())
	root.SetHelpCommandGroupID(groupTools)
	root.SetCompletionCommandGroupID(groupTools)
	return root
}

// Command groups of the root's help.
const (
	groupRun     = "run"
	groupOperate = "operate"
	groupTools   = "tools"
)

// legacyRun is a command body that reports through its exit code and prints its own
// errors: 0 success, 1 failure, 2 bad usage.
type legacyRun func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// goFlagsCmd completes c from define, which puts the command's flags on a standard
// library FlagSet and returns the body that reads them; cobra parses them (see
// cli.AddGoFlags). long renames one-letter flags (-v keeps working as the shorthand). A
// body's exit code 2 gets the --help hint.
func goFlagsCmd(c *cobra.Command, define func(fs *flag.FlagSet) legacyRun, long map[string]string) *cobra.Command {
	fs := flag.NewFlagSet(c.Name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	body := define(fs)
	cli.AddGoFlags(c.Flags(), fs, cli.GoFlagsOptions{Long: long})
	c.RunE = func(c *cobra.Command, args []string) error {
		code := body(c.Context(), args, c.OutOrStdout(), c.ErrOrStderr())
		if code == 2 {
			c.PrintErrf("Run '%s --help' for usage.\n", c.CommandPath())
		}
		return cli.Exit(code)
	}
	return c
}
