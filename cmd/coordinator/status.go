package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// runStatus is `coordinator status`: every node's /v1/status, as a table (or JSON).
// It exits 0 if some node knows a leader, 1 if none does, 2 on bad flags.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("addr", "http://127.0.0.1:8080", "admin API `URLs` of the nodes, comma-separated")
	asJSON := fs.Bool("json", false, "print the raw statuses as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the whole query")
	ca := fs.String("admin-ca", os.Getenv(envAdminCA), "CA `file` to trust for https:// URLs (default $"+envAdminCA+"); with it a bare host:port means https")
	token := fs.String("admin-read-token", "", "bearer `token` for nodes that require the read role (default $"+envAdminReadToken+
		", else $"+envAdminToken+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator status --addr http://h:p[,http://h2:p2,...] [--admin-ca FILE] [--json]\n\n"+
			"Show the cluster at a glance: every node's role, term, indexes and counts. Exits 0 if a\n"+
			"leader is known, 1 if not.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	var urls []string
	for _, u := range strings.Split(*addrs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "coordinator status: --addr needs at least one URL and --timeout must be > 0")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	hc, err := admin.NewHTTPClient(*ca, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator status: %v\n", err)
		return 2
	}
	defer hc.CloseIdleConnections()
	for i := range urls {
		urls[i] = admin.BaseURL(urls[i], *ca != "")
	}
	tok := *token
	for _, env := range []string{envAdminReadToken, envAdminToken} {
		if tok == "" {
			tok = os.Getenv(env)
		}
	}
	sts := (&admin.StatusClient{HTTP: hc, Token: tok}).FetchAll(ctx, urls)
	if *asJSON {
		type entry struct {
			Endpoint string        `json:"endpoint"`
			Error    string        `json:"error,omitempty"`
			Status   *admin.Status `json:"status,omitempty"`
		}
		out := make([]entry, len(sts))
		for i, st := range sts {
			out[i] = entry{Endpoint: st.Endpoint}
			if st.Err != nil {
				out[i].Error = st.Err.Error()
			} else {
				out[i].Status = st
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "coordinator status: %v\n", err)
			return 1
		}
	} else if err := admin.FormatCluster(stdout, sts); err != nil {
		fmt.Fprintf(stderr, "coordinator status: %v\n", err)
		return 1
	}
	if leaderKnown(sts) {
		return 0
	}
	return 1
}

// leaderKnown reports whether any node that answered names a leader.
func leaderKnown(sts []*admin.Status) bool {
	for _, st := range sts {
		if st != nil && st.Err == nil && st.LeaderID != "" {
			return true
		}
	}
	return false
}
