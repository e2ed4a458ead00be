package main

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// Environment of the commands that talk to a cluster.
const (
	// envEndpoints is the default of --endpoints.
	envEndpoints = envPrefix + "_ENDPOINTS"
	// envAdminToken is the operate token (operate commands, snapshot, prestop; reads
	// fall back on it); envAdminReadToken the read token reads prefer.
	envAdminToken     = envPrefix + "_ADMIN_TOKEN"
	envAdminReadToken = envPrefix + "_ADMIN_READ_TOKEN"
	// envAdminCA is where the admin clients find --admin-ca by default; serve's
	// --admin-ca reads it too (the flag's own variable).
	envAdminCA = envPrefix + "_ADMIN_CA"
)

// defaultEndpoint is the admin API of a node started with serve's default --admin-addr.
const defaultEndpoint = "http://127.0.0.1:8080"

// clusterFlags are the flags of every command that talks to a running cluster:
// --endpoints, --admin-ca, --token, --timeout.
type clusterFlags struct {
	endpoints []string
	ca        string
	token     string
	timeout   time.Duration
	// operate: the command changes something, so it wants the operate token.
	operate bool
}

// addClusterFlags adds the cluster flags to c. operate commands take the operate token
// ($SHARDMATCH_ADMIN_TOKEN); reads prefer the read token.
func addClusterFlags(c *cobra.Command, operate bool) *clusterFlags {
	f := &clusterFlags{operate: operate, timeout: 10 * time.Second}
	fs := c.Flags()
	fs.StringSliceVar(&f.endpoints, "endpoints", nil, "admin API `URLs` of the cluster's nodes, comma-separated; any node will do "+
		"(default $"+envEndpoints+", else "+defaultEndpoint+")")
	fs.StringVar(&f.ca, "admin-ca", "", "CA `file` to trust for https:// URLs (default $"+envAdminCA+"); with it a bare host:port means https")
	tokenHelp := "bearer `token` of the operate role (default $" + envAdminToken + ")"
	if !operate {
		tokenHelp = "bearer `token` for nodes that require the read role (default $" + envAdminReadToken + ", else $" + envAdminToken + ")"
	}
	fs.StringVar(&f.token, "token", "", tokenHelp)
	fs.Var(cli.DurationValue{D: &f.timeout}, "timeout", "bound on the whole command")
	return f
}

// urls are --endpoints, else $SHARDMATCH_ENDPOINTS, else the default, as base URLs.
func (f *clusterFlags) urls() ([]string, error) {
	raw := f.endpoints
	if len(raw) == 0 {
		if env := os.Getenv(envEndpoints); env != "" {
			raw = strings.Split(env, ",")
		} else {
			raw = []string{defaultEndpoint}
		}
	}
	var out []string
	for _, u := range raw {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, admin.BaseURL(u, f.caFile() != ""))
		}
	}
	if len(out) == 0 {
		return nil, cli.Usagef("--endpoints needs at least one URL")
	}
	if f.timeout <= 0 {
		return nil, cli.Usagef("--timeout must be > 0")
	}
	return out, nil
}

func (f *clusterFlags) caFile() string {
	if f.ca != "" {
		return f.ca
	}
	return os.Getenv(envAdminCA)
}

// bearer is --token, else the token of the command's role from the environment.
func (f *clusterFlags) bearer() string {
	if f.token != "" {
		return f.token
	}
	envs := []string{envAdminReadToken, envAdminToken}
	if f.operate {
		envs = []string{envAdminToken}
	}
	for _, e := range envs {
		if t := os.Getenv(e); t != "" {
			return t
		}
	}
	return ""
}

// client is an APIClient on the endpoints and a context bounded by --timeout; call
// done when finished.
func (f *clusterFlags) client(ctx context.Context) (_ *admin.APIClient, _ context.Context, done func(), _ error) {
	urls, err := f.urls()
	if err != nil {
		return nil, nil, nil, err
	}
	hc, err := admin.NewHTTPClient(f.caFile(), f.timeout)
	if err != nil {
		return nil, nil, nil, cli.Usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return &admin.APIClient{Endpoints: urls, HTTP: hc, Token: f.bearer()}, ctx, func() {
		cancel()
		hc.CloseIdleConnections()
	}, nil
}

// answer is what a cluster command prints: v as JSON or YAML with -o, else table.
type answer struct {
	v     any
	table func(w io.Writer) error
}

// runE is the body of a command that talks to the cluster: it opens a client on the
// endpoints (the whole call bounded by --timeout), runs do and prints its answer with
// out.
func (f *clusterFlags) runE(out *cli.OutputValue, do func(ctx context.Context, cl *admin.APIClient, args []string) (answer, error)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		cl, ctx, done, err := f.client(c.Context())
		if err != nil {
			return err
		}
		defer done()
		a, err := do(ctx, cl, args)
		if err != nil {
			return err
		}
		return out.Print(c.OutOrStdout(), a.v, a.table)
	}
}
