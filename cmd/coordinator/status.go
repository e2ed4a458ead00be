package main

import (
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// statusEntry is one node in `status -o json|yaml`.
type statusEntry struct {
	Endpoint string        `json:"endpoint"`
	Error    string        `json:"error,omitempty"`
	Status   *admin.Status `json:"status,omitempty"`
}

// newStatusCmd is `coordinator status`: every node's /v1/status, as a table, JSON or
// YAML. It exits 0 if some node knows a leader, 1 if none does, 2 on bad flags.
func newStatusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a cluster at a glance from the nodes' admin APIs",
		Long: "Show the cluster at a glance: every node's role, term, indexes and counts, read from each\n" +
			"node given in --endpoints. Exits 0 if a leader is known, 1 if not.",
		Example: "  coordinator status --endpoints http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083\n" +
			"  SHARDMATCH_ENDPOINTS=http://127.0.0.1:8081 coordinator status -o json",
		Args: cli.NoArgs,
	}
	cf := addClusterFlags(c, false)
	cf.timeout = defaultStatusTimeout
	c.Flags().Lookup("timeout").DefValue = defaultStatusTimeout.String()
	out := cli.AddOutputFlag(c)
	// Kept for old invocations: --addr is --endpoints, --json is -o json,
	// --admin-read-token is --token.
	addr := c.Flags().String("addr", "", "admin API `URLs` of the nodes, comma-separated")
	asJSON := c.Flags().Bool("json", false, "print the statuses as JSON")
	c.Flags().StringVar(&cf.token, "admin-read-token", "", "bearer `token` for nodes that require the read role")
	cli.Deprecate(c.Flags(), "addr", "--endpoints")
	cli.Deprecate(c.Flags(), "json", "-o json")
	cli.Deprecate(c.Flags(), "admin-read-token", "--token")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if c.Flags().Changed("addr") {
			if *addr == "" {
				return cli.Usagef("--addr needs at least one URL")
			}
			cf.endpoints = append(cf.endpoints, strings.Split(*addr, ",")...)
		}
		if *asJSON {
			out.Format = cli.JSON
		}
		cl, ctx, done, err := cf.client(c.Context())
		if err != nil {
			return err
		}
		defer done()
		sts := (&admin.StatusClient{HTTP: cl.HTTP, Token: cl.Token}).FetchAll(ctx, cl.Endpoints)
		entries := make([]statusEntry, len(sts))
		for i, st := range sts {
			entries[i] = statusEntry{Endpoint: st.Endpoint}
			if st.Err != nil {
				entries[i].Error = st.Err.Error()
			} else {
				entries[i].Status = st
			}
		}
		if err := out.Print(c.OutOrStdout(), entries, func(w io.Writer) error { return admin.FormatCluster(w, sts) }); err != nil {
			return err
		}
		if leaderKnown(sts) {
			return nil
		}
		return cli.Exit(1)
	}
	return c
}

// defaultStatusTimeout bounds `status`: it is what an operator runs first, often
// against a cluster in trouble.
const defaultStatusTimeout = 5 * time.Second

// leaderKnown reports whether any node that answered names a leader.
func leaderKnown(sts []*admin.Status) bool {
	for _, st := range sts {
		if st != nil && st.Err == nil && st.LeaderID != "" {
			return true
		}
	}
	return false
}
