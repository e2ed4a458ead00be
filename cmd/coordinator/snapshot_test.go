package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

const snapToken = "snap-token"

type yesShard struct{}

func (yesShard) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (yesShard) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (yesShard) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

// snapCluster is a real 3-node coordinator.LocalCluster, shards s1 and s2 on the
// in-memory participant network, and each node's admin API on a real HTTP server.
type snapCluster struct {
	lc   *coordinator.LocalCluster
	urls []string
}

func newSnapCluster(t *testing.T) *snapCluster {
	t.Helper()
	ref := clock.NewReal()
	netw := twophase.NewInmemNetwork(twophase.InmemConfig{Clock: ref})
	t.Cleanup(func() { _ = netw.Close() })
	for _, id := range []string{"s1", "s2"} {
		p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: yesShard{},
			Journal: twophase.NewMemJournal(), Clock: ref})
		if err != nil {
			t.Fatal(err)
		}
		netw.AddShard(id, p)
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		DataDir: t.TempDir(), AttemptTimeout: 2 * time.Second,
		Participants: func(id string) coordinator.TransportFactory {
			return func(h twophase.ReplyHandler) (twophase.Transport, error) { return netw.Coordinator(id, h), nil }
		},
		Configure: func(_ string, cfg *coordinator.Config) {
			cfg.Clock = ref
			cfg.ResendInitial, cfg.ResendMax = 20*time.Millisecond, 200*time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &snapCluster{lc: lc}
	var https []*httptest.Server
	var srvs []*admin.Server
	t.Cleanup(func() {
		for _, h := range https {
			h.Close()
		}
		http.DefaultClient.CloseIdleConnections()
		lc.Shutdown()
		for _, s := range srvs {
			s.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range []string{"s1", "s2"} {
		if err := lc.OnLeader(ctx, func(n *coordinator.Node) error {
			return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: s})
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range lc.Size() {
		srv, err := admin.New(admin.Config{Node: lc.Node(i), AuthToken: snapToken})
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
		h := httptest.NewServer(srv.Handler())
		https = append(https, h)
		c.urls = append(c.urls, h.URL)
	}
	return c
}

// commit has n duels committed, retrying one a leader change aborted.
func (c *snapCluster) commit(t *testing.T, tag string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		for try := 0; ; try++ {
			pid := fmt.Sprintf("%s-%d-%d", tag, i, try)
			d, err := c.lc.Propose(ctx, &smv1.Proposal{ProposalId: pid, Mode: "duel", MatchTtlMs: 60_000, Teams: []*smv1.Team{
				{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("a-%s-%d", tag, i), ShardId: "s1"}}},
				{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("b-%s-%d", tag, i), ShardId: "s2"}}}}})
			if err == nil && d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
				break
			}
			if err != nil || d.GetReason() != smv1.Reason_REASON_COORDINATOR_FAILOVER || try > 5 {
				t.Fatalf("propose %s: %v %v", pid, d, err)
			}
		}
	}
}

// settledState waits until every node has applied the same state, every transaction
// is finished (a COMMITTED one still collecting acks would change after it is read),
// and returns it without its applied index.
func (c *snapCluster) settledState(t *testing.T) *smv1.FSMState {
	t.Helper()
	var st *smv1.FSMState
	testutil.WaitFor(t, 15*time.Second, "every node at the same state, every txn done, a leader leading", func() error {
		st = nil
		for i := range c.lc.Size() {
			s := c.lc.Node(i).FSM().State()
			s.AppliedIndex = 0
			if st != nil && !proto.Equal(st, s) {
				return fmt.Errorf("%s differs", c.lc.NodeID(i))
			}
			st = s
		}
		for _, tx := range st.GetTxns() {
			if tx.GetState() != smv1.TxnState_TXN_STATE_DONE {
				return fmt.Errorf("txn %s is %s", tx.GetTxid(), tx.GetState())
			}
		}
		if _, _, err := c.lc.Leader(context.Background()); err != nil {
			return err
		}
		return nil
	})
	return st
}

// TestSnapshotCLI saves a real cluster's state with `coordinator snapshot save`,
// inspects the file, restores it into a new cluster, and checks the refusals: an
// older snapshot without --force, a corrupted file, no token, bad usage.
func TestSnapshotCLI(t *testing.T) {
	t.Setenv(envAdminToken, "") // the first save must go without a token
	a := newSnapCluster(t)
	a.commit(t, "m", 3)
	want := a.settledState(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.snap")
	all := strings.Join(a.urls, ",")

	code, out, errOut := runCmd(t, "snapshot", "save", "--addr", all, "-o", file)
	if code != 1 || !strings.Contains(errOut, "UNAUTHENTICATED") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("save without a token: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("a failed save left %s.part: %v", file, err)
	}
	code, out, errOut = runCmd(t, "snapshot", "save", "--addr", all, "-o", file, "--admin-token", snapToken)
	if code != 0 || !strings.Contains(out, "index ") || !strings.Contains(out, "term ") || !strings.Contains(out, "bytes") {
		t.Fatalf("save: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part left behind: %v", file, err)
	}

	code, out, errOut = runCmd(t, "snapshot", "inspect", "--json", file)
	var info admin.SnapshotInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Txns != len(want.GetTxns()) || info.Leases != 6 ||
		info.Shards != 2 || info.MaxToken != want.GetMaxToken() || info.Index == 0 {
		t.Fatalf("inspect --json: %d %q %q", code, out, errOut)
	}
	if code, out, _ = runCmd(t, "snapshot", "inspect", file); code != 0 || !strings.Contains(out, "leases     6") {
		t.Fatalf("inspect: %d %q", code, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.snap")
	raw[len(raw)/2] ^= 0x40
	if err := os.WriteFile(bad, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut = runCmd(t, "snapshot", "inspect", bad); code != 1 || !strings.Contains(errOut, "checksum") ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("inspect of a corrupted file: %d %q", code, errOut)
	}

	b := newSnapCluster(t)
	b.settledState(t)
	t.Setenv(envAdminToken, snapToken)
	ball := strings.Join(b.urls, ",")
	if code, _, errOut = runCmd(t, "snapshot", "restore", "--addr", ball, bad); code != 1 || !strings.Contains(errOut, "checksum") {
		t.Fatalf("restore of a corrupted file: %d %q", code, errOut)
	}
	// Flags after the file, and the leader found behind a follower's URL.
	code, out, errOut = runCmd(t, "snapshot", "restore", file, "--addr", ball)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("snapshot index %d", info.Index)) {
		t.Fatalf("restore: %d %q %q", code, out, errOut)
	}
	if got := b.settledState(t); !proto.Equal(got, want) {
		t.Fatalf("new cluster after restore:\n got %v\nwant %v", got, want)
	}
	b.commit(t, "later", 1)
	code, out, errOut = runCmd(t, "snapshot", "restore", "--addr", ball, file)
	if code != 1 || !strings.Contains(errOut, "CONFLICT") || !strings.Contains(errOut, "older") {
		t.Fatalf("restore of an older snapshot: %d %q %q", code, out, errOut)
	}
	if code, out, errOut = runCmd(t, "snapshot", "restore", "--addr", ball, "--force", file); code != 0 || !strings.Contains(out, "forced") {
		t.Fatalf("forced restore: %d %q %q", code, out, errOut)
	}
	if got := b.settledState(t); !proto.Equal(got, want) {
		t.Fatalf("after the forced restore:\n got %v\nwant %v", got, want)
	}
}

func TestSnapshotCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"snapshot"}, 2},
		{[]string{"snapshot", "--help"}, 0},
		{[]string{"snapshot", "bogus"}, 2},
		{[]string{"snapshot", "save", "--help"}, 0},
		{[]string{"snapshot", "restore", "--help"}, 0},
		{[]string{"snapshot", "inspect", "--help"}, 0},
		{[]string{"snapshot", "save", "--addr", "http://127.0.0.1:1"}, 2},
		{[]string{"snapshot", "restore"}, 2},
		{[]string{"snapshot", "restore", "a", "b"}, 2},
		{[]string{"snapshot", "inspect", "--nope", "f"}, 2},
		{[]string{"snapshot", "inspect", filepath.Join(t.TempDir(), "missing")}, 1},
	} {
		if code, out, errOut := runCmd(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
		}
	}
}
