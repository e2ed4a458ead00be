package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// recListener records what a node tells it.
type recListener struct {
	mu        sync.Mutex
	leading   []string
	decisions []string
}

func (r *recListener) Leading(leading bool, term uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading = append(r.leading, fmt.Sprintf("%v@%d", leading, term))
}

func (r *recListener) Decided(d *smv1.Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, d.GetTxid())
}

func (r *recListener) snapshot() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.leading...), append([]string(nil), r.decisions...)
}

// A listener added to a node that already leads hears so at once, then every
// decision, then the loss of leadership; once removed it hears nothing more.
func TestListenReplaysLeadership(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 31})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := c.leader(ctx)
	node := c.lc.Node(l)
	term := node.Raft().CurrentTerm()
	rec := &recListener{}
	remove := node.Listen(rec)
	if got, _ := rec.snapshot(); len(got) != 1 || got[0] != fmt.Sprintf("true@%d", term) {
		t.Fatalf("a listener added to the leader heard %v, want [true@%d]", got, term)
	}
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "a@s1", "b@s2"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 10*time.Second, "the listener to hear the decision", func() bool {
		_, ds := rec.snapshot()
		return len(ds) == 1 && ds[0] == d.GetTxid()
	})
	follower := &recListener{}
	c.lc.Node((l + 1) % 3).Listen(follower)
	if got, _ := follower.snapshot(); len(got) != 0 {
		t.Fatalf("a follower's listener heard %v", got)
	}
	if err := node.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 10*time.Second, "the old leader's listener to hear it lost leadership", func() bool {
		got, _ := rec.snapshot()
		return len(got) == 2 && got[1] == fmt.Sprintf("false@%d", term)
	})
	remove()
	d2, err := c.propose(ctx, "p2", match("m2", time.Minute, "c@s1", "d@s2"))
	if err != nil {
		t.Fatal(err)
	}
	// The decision is applied on every node; the removed listener heard none of it.
	testutil.WaitUntil(t, 10*time.Second, "the follower's listener to hear m2", func() bool {
		_, ds := follower.snapshot()
		return slices.Contains(ds, d2.GetTxid())
	})
	if _, ds := rec.snapshot(); slices.Contains(ds, d2.GetTxid()) {
		t.Fatalf("a removed listener heard %v", ds)
	}
}
