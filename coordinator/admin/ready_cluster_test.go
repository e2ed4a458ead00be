package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// gate holds back the log entries a leader sends to one Raft address while it is
// closed. Heartbeats (no entries) pass, so the follower knows its leader all along,
// exactly as a real follower does while it waits for the entries it missed.
type gate struct {
	mu     sync.Mutex
	target raft.ServerAddress
	open   chan struct{}
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

// hold closes the gate for target.
func (g *gate) hold(target raft.ServerAddress) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.target, g.open = target, make(chan struct{})
}

// release opens the gate; safe to call twice.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gate) wait(target raft.ServerAddress, n int) {
	g.mu.Lock()
	held, open := target == g.target && n > 0, g.open
	g.mu.Unlock()
	if held {
		<-open
	}
}

// gatedTransport is a node's Raft transport with its outgoing appends through the
// gate. It refuses pipelining so that every append goes through AppendEntries.
type gatedTransport struct {
	raft.Transport
	g *gate
}

func (t gatedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t gatedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest,
	resp *raft.AppendEntriesResponse) error {
	t.g.wait(target, len(args.Entries))
	return t.Transport.AppendEntries(id, target, args, resp)
}

// readyzBody is /readyz's JSON.
type readyzBody struct {
	Ready             bool   `json:"ready"`
	Reason            string `json:"reason"`
	LeaderID          string `json:"leader_id"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LeaderCommitIndex uint64 `json:"leader_commit_index"`
	Lag               uint64 `json:"lag"`
}

func getReadyz(t *testing.T, hc *http.Client, url string) (int, readyzBody) {
	t.Helper()
	resp, err := hc.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd readyzBody
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rd
}

// TestReadyzRestartedFollowerWaitsForTheLeader reproduces the bug of issue 10: a
// follower is stopped, thousands of entries are committed without it, and it is
// restarted. It hears the leader's heartbeats at once, while the entries it missed are
// held back (as a slow catch-up would), so its own commit and applied indexes agree
// and the old readiness (own commit index) said ready. /readyz must answer 503 until
// its applied index is within MaxApplyLag of the leader's commit index (learned over
// NATS from the leader), then 200.
func TestReadyzRestartedFollowerWaitsForTheLeader(t *testing.T) {
	g := newGate()
	var c *natsapitest.Cluster
	c = natsapitest.Start(t, natsapitest.Options{
		Coordinator: func(_ string, cfg *coordinator.Config) {
			cfg.RaftTransport = gatedTransport{Transport: cfg.RaftTransport, g: g}
			// Thousands of fsync'd appends on a busy 2-core machine under -race: give
			// the leader room, so that the run is about readiness and not elections.
			cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		},
		API: func(id string, cfg *natsapi.Config) {
			i := int(id[1] - '1')
			cfg.CommitIndex = func() uint64 {
				if n := c.Node(i); n != nil {
					return n.Raft().CommitIndex()
				}
				return 0
			}
		},
	})
	t.Cleanup(g.release) // before the cluster shuts down (cleanups run last first)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := c.WaitServing(ctx)
	f := (leader + 1) % c.Size()
	fAddr := raft.ServerAddress(c.LC().NodeID(f)) // LocalCluster's Raft address is the id

	c.Kill(f)
	const entries = 3000
	data, err := coordinator.EncodeBatch([]*smv1.Command{{Op: &smv1.Command_Forget{Forget: &smv1.Forget{}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Node(leader).Raft()
	for done := 0; done < entries; done += 250 {
		futures := make([]raft.ApplyFuture, 250)
		for i := range futures {
			futures[i] = r.Apply(data, 10*time.Second)
		}
		for _, fu := range futures {
			if err := fu.Error(); err != nil {
				t.Fatalf("after %d entries: %v", done, err)
			}
		}
	}
	leaderCommit := r.CommitIndex()

	g.hold(fAddr)
	c.Restart(f)
	li, err := natsapi.NewLeaderIndexClient(natsapi.LeaderIndexClientConfig{Conn: c.Connect(), Prefix: c.Prefix(),
		MaxAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Node: c.Node(f), LeaderIndex: admin.LeaderIndexFunc(
		func(ctx context.Context) (admin.LeaderIndex, error) {
			x, err := li.LeaderIndex(ctx)
			return admin.LeaderIndex{NodeID: x.NodeID, Term: x.Term, CommitIndex: x.CommitIndex}, err
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	hc := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)

	// While held back: the follower knows the leader and is "caught up" by its own
	// commit index (the old readiness), yet /readyz says 503 with the real lag.
	var held readyzBody
	testutil.WaitFor(t, 20*time.Second, "the restarted follower to know the leader and its commit index", func() error {
		code, rd := getReadyz(t, hc, hs.URL)
		if rd.LeaderID == "" {
			return fmt.Errorf("no leader known yet: %d %+v", code, rd)
		}
		if code != http.StatusServiceUnavailable || rd.Ready {
			t.Fatalf("ready while held %d entries behind the leader: %d %+v", int64(leaderCommit)-int64(rd.AppliedIndex), code, rd)
		}
		if rd.LeaderCommitIndex < leaderCommit {
			return fmt.Errorf("leader's commit index not learned yet: %d %+v", code, rd)
		}
		held = rd
		return nil
	})
	t.Logf("held back: %+v", held)
	if held.AppliedIndex+admin.DefaultMaxApplyLag >= leaderCommit {
		t.Fatalf("the follower was not held back: applied %d, leader committed %d", held.AppliedIndex, leaderCommit)
	}
	if old := held.CommitIndex <= held.AppliedIndex+admin.DefaultMaxApplyLag; !old {
		t.Logf("note: the old readiness would have said not ready too (commit %d, applied %d)", held.CommitIndex, held.AppliedIndex)
	}
	if held.Lag != max(held.LeaderCommitIndex, held.CommitIndex)-held.AppliedIndex {
		t.Errorf("lag %d, want leader commit %d - applied %d", held.Lag, held.LeaderCommitIndex, held.AppliedIndex)
	}

	// Let it catch up: every answer on the way is 503 until applied reaches the
	// leader's commit index less MaxApplyLag, and then it turns 200.
	g.release()
	testutil.WaitFor(t, 30*time.Second, "the follower ready once caught up", func() error {
		code, rd := getReadyz(t, hc, hs.URL)
		if code == http.StatusOK {
			if rd.AppliedIndex+admin.DefaultMaxApplyLag < leaderCommit {
				t.Fatalf("ready at applied %d, leader had committed %d before the restart: %+v", rd.AppliedIndex, leaderCommit, rd)
			}
			return nil
		}
		return fmt.Errorf("%d %+v", code, rd)
	})
}
