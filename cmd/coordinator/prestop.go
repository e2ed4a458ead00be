package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// newPrestopCmd is `coordinator prestop`, a pod's preStop hook (the image has no
// shell): if the local node leads, hand leadership over through its admin API and wait
// until another node leads, so that the SIGTERM that follows stops a follower. It exits
// 0 when the node does not lead or another node has taken over, 1 with one line on
// stderr when that could not be done in time, 2 on bad flags. The admin token comes
// from SHARDMATCH_ADMIN_TOKEN.
func newPrestopCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "prestop",
		Short: "Hand leadership over before this node stops (a pod's preStop hook)",
		Long: "A pod's preStop hook: if the local node leads, transfer leadership (POST /v1/leader/transfer\n" +
			"with the token in $" + envAdminToken + ") and wait until another node leads. Exits 0 when\n" +
			"this node does not lead or has handed over, 1 on failure.",
		Example: "  coordinator prestop --admin-addr http://127.0.0.1:8080 --timeout 20s",
		Args:    cli.NoArgs,
	}, definePrestop, nil)
}

func definePrestop(fs *flag.FlagSet) legacyRun {
	addr := fs.String("admin-addr", "http://127.0.0.1:8080", "the local node's admin API `URL`")
	timeout := fs.Duration("timeout", 20*time.Second, "bound on the whole hand-over (keep it below the pod's termination grace period)")
	ca := fs.String("admin-ca", "", "CA `file` to trust when --admin-addr is https:// (default $"+envAdminCA+"); "+
		"with it a bare host:port means https")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		if *ca == "" {
			*ca = os.Getenv(envAdminCA)
		}
		return prestopMain(ctx, addr, ca, timeout, stdout, stderr)
	}
}

// prestopMain hands leadership over as prestop's flags say.
func prestopMain(pctx context.Context, addr, ca *string, timeout *time.Duration, stdout, stderr io.Writer) int {
	if *timeout <= 0 || strings.TrimSpace(*addr) == "" {
		fmt.Fprintln(stderr, "coordinator prestop: --admin-addr must be set and --timeout must be > 0")
		return 2
	}
	ctx, cancel := context.WithTimeout(pctx, *timeout)
	defer cancel()
	hc, err := admin.NewHTTPClient(*ca, 15*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator prestop: %v\n", err)
		return 2
	}
	defer hc.CloseIdleConnections()
	p := prestop{base: admin.BaseURL(*addr, *ca != ""), token: os.Getenv(envAdminToken), hc: hc}
	msg, err := p.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator prestop: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "coordinator prestop: %s\n", msg)
	return 0
}

// prestop is one hand-over through the local admin API.
type prestop struct {
	base, token string
	hc          *http.Client
}

// run hands leadership over if the node leads and returns what happened.
func (p prestop) run(ctx context.Context) (string, error) {
	sc := &admin.StatusClient{HTTP: p.hc, Token: p.token} // the operate token reads too
	st, err := sc.Fetch(ctx, p.base)
	if err != nil {
		return "", fmt.Errorf("cannot read the local node's status: %v", err)
	}
	self := st.NodeID
	if st.Role != "leader" {
		return fmt.Sprintf("%s is %s, not the leader: nothing to hand over", self, st.Role), nil
	}
	if p.token == "" {
		return "", fmt.Errorf("%s leads, but %s_ADMIN_TOKEN is not set: cannot ask it to hand leadership over", self, envPrefix)
	}
	var last, transferErr error
	for attempt := 0; ; attempt++ {
		if st != nil && st.Role == "leader" {
			// Raft answers once the target won or after an election timeout; a failed
			// transfer (no voter caught up yet) is tried again until the deadline.
			transferErr = p.transfer(ctx)
		}
		st, err = sc.Fetch(ctx, p.base)
		switch {
		case err != nil:
			last = err
		case st.Role != "leader" && st.LeaderID != "" && st.LeaderID != self:
			return fmt.Sprintf("%s handed leadership to %s", self, st.LeaderID), nil
		case st.Role != "leader":
			last = fmt.Errorf("%s is %s, no new leader known yet", self, st.Role)
		default:
			last = fmt.Errorf("%s still leads after %d transfer attempts (last: %v)", self, attempt+1, transferErr)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no other node leads after the deadline: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// transfer is POST /v1/leader/transfer with the admin token.
func (p prestop) transfer(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/leader/transfer", bytes.NewReader(nil))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("leadership transfer: %v", admin.ExplainTLS(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("leadership transfer: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
