package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Proposers keep proposing while the leader is killed and restarted, twice. Every call
// returns a decision, no proposal id ever maps to two transactions on any node, every
// returned decision is the one in the log, no shard commits a txid twice, the intake
// consumer ends with nothing unsettled, and SM_EVENTS holds exactly one event per
// decision (the new leader's replay fills what the killed one did not publish).
func TestLeaderChangeUnderLoad(t *testing.T) {
	const proposers, each = 24, 8
	c := startCluster(t)
	nc := c.Connect()
	cl := newClient(t, nc, client.Config{AttemptTimeout: time.Second, StatusTimeout: 500 * time.Millisecond})
	ctx := ctxFor(t, 120*time.Second)

	var done atomic.Int64
	var mu sync.Mutex
	results := map[string]*smv1.Decision{}
	var failures []error
	var wg sync.WaitGroup
	for g := 0; g < proposers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < each; k++ {
				pid := fmt.Sprintf("load-%d-%d", g, k)
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				d, err := cl.Propose(cctx, proposal(pid))
				cancel()
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("%s: %w", pid, err))
				} else {
					results[pid] = d
				}
				mu.Unlock()
				done.Add(1)
			}
		}()
	}
	total := int64(proposers * each)
	for _, at := range []int64{total / 4, total / 2} {
		testutil.WaitFor(t, 60*time.Second, "calls to be done before the kill", func() error {
			if n := done.Load(); n < at {
				return fmt.Errorf("%d of %d calls done", n, total)
			}
			return nil
		})
		leader := c.WaitServing(ctx)
		t.Logf("killing leader %d after %d calls", leader, done.Load())
		c.Kill(leader)
		next := c.WaitServing(ctx)
		t.Logf("node %d serves", next)
		c.Restart(leader)
	}
	wg.Wait()
	for _, err := range failures {
		if !errors.Is(err, client.ErrOutcomeUnknown) {
			t.Errorf("failed: %v", err)
		} else {
			t.Errorf("outcome unknown though the context had time left: %v", err)
		}
	}
	if len(results) != int(total) {
		t.Fatalf("%d decisions for %d calls", len(results), total)
	}

	var committed, aborted int
	for pid, d := range results {
		if ids := c.Txids(pid); len(ids) != 1 || ids[0] != d.GetTxid() {
			t.Errorf("%s: decision txid %s, FSM txids %v", pid, d.GetTxid(), ids)
		}
		if d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			committed++
		} else {
			aborted++
		}
	}
	t.Logf("%d committed, %d aborted", committed, aborted)
	for _, id := range c.ShardIDs() {
		for txid, n := range c.Shard(id).Commits() {
			if n != 1 {
				t.Errorf("%s committed %s %d times", id, txid, n)
			}
		}
	}
	// Every node agrees with the decision the proposer got.
	testutil.WaitFor(t, 20*time.Second, "every node to hold every outcome", func() error {
		for i := 0; i < c.Size(); i++ {
			n := c.Node(i)
			for pid, d := range results {
				rec, ok := n.FSM().TxnByProposal(pid)
				if !ok || rec.GetDecision().GetOutcome() != d.GetOutcome() {
					return fmt.Errorf("%s on %s: %v", pid, n.ID(), rec.GetDecision())
				}
			}
		}
		return nil
	})
	// Nothing is left unsettled on the intake consumer: every delivered request was
	// acked, which it only is once its answer is in the log.
	js, _ := jetstream.New(nc)
	testutil.WaitFor(t, 20*time.Second, "the intake consumer to settle", func() error {
		cons, err := js.Consumer(ctx, "SM_REQ", "coordinator-intake")
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("intake: %d unacked, %d pending", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	readEvents(t, nc, len(results))
}
