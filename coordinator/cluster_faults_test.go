package coordinator_test

// Crashes, restarts and partitions in the middle of a transaction: the
// leader killed during prepare or between deciding and delivering, a shard
// restarted with a prepared txn, an abort that overtakes its prepare, a
// leader cut off after the votes, and the checker shown to catch a
// coordinator that delivers before it logs.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// dropTo drops every command of the given type addressed to shard.
func dropTo(shard string, kind string) twophase.InmemHook {
	return func(from, to string, msg proto.Message) bool {
		cmd, ok := msg.(*smv1.ShardCommand)
		if !ok || to != shard {
			return true
		}
		switch kind {
		case "prepare":
			return cmd.GetPrepare() == nil
		case "commit":
			return cmd.GetCommit() == nil
		}
		return true
	}
}

// The leader dies while a shard never got its Prepare: the new leader presumes abort.
func TestClusterLeaderKilledDuringPrepare(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.net.SetHook(dropTo("s2", "prepare"))
	l := c.leader(ctx)
	done := make(chan *smv1.Decision, 1)
	go func() {
		d, _ := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
		done <- d
	}()
	testutil.WaitUntil(t, 10*time.Second, "s1 to vote YES", func() bool { return len(c.shards["s1"].part.InDoubt()) == 1 })
	if err := c.lc.Kill(l); err != nil {
		t.Fatal(err)
	}
	c.net.SetHook(nil)
	d := <-done
	if d.GetOutcome() != smv1.Outcome_OUTCOME_ABORTED || d.GetReason() != smv1.Reason_REASON_COORDINATOR_FAILOVER {
		t.Fatalf("decision = %v", d)
	}
	if err := c.lc.Start(l); err != nil {
		t.Fatal(err)
	}
	requireClean(t, c.check(20*time.Second))
	if st := c.shards["s1"].part.Stats(); st.Aborts != 1 {
		t.Fatalf("s1 stats %+v, want one abort", st)
	}
}

// The leader logs COMMIT and dies before any shard hears it: the new leader delivers
// the same decision, and the proposer's answer never changes.
func TestClusterLeaderKilledBetweenDecideAndDeliver(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var commits atomic.Int64
	c.net.SetHook(func(from, to string, msg proto.Message) bool {
		if cmd, ok := msg.(*smv1.ShardCommand); ok && cmd.GetCommit() != nil {
			commits.Add(1)
			return false // no shard hears the commit from this leader
		}
		return true
	})
	l := c.leader(ctx)
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("decision %v %v", d, err)
	}
	testutil.WaitUntil(t, 5*time.Second, "a commit to be sent", func() bool { return commits.Load() > 0 })
	if err := c.lc.Kill(l); err != nil {
		t.Fatal(err)
	}
	c.net.SetHook(nil)
	requireClean(t, c.check(20*time.Second))
	for _, s := range []string{"s1", "s2"} {
		if st := c.shards[s].part.Stats(); st.Commits != 1 {
			t.Fatalf("%s: %+v, want exactly one commit", s, st)
		}
	}
	again, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || !proto.Equal(again, d) {
		t.Fatalf("decision changed after failover: %v -> %v (%v)", d, again, err)
	}
}

// A shard crashes after voting YES and misses the decision; on restart it replays its
// journal, asks the leader, and commits exactly once.
func TestClusterShardRestartWithPreparedTxn(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.net.SetHook(dropTo("s2", "commit"))
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("decision %v %v", d, err)
	}
	if got := c.shards["s2"].part.InDoubt(); len(got) != 1 {
		t.Fatalf("s2 in doubt: %v", got)
	}
	c.killShard("s2")
	c.net.SetHook(nil)
	c.restartShard(ctx, "s2")
	testutil.WaitUntil(t, 10*time.Second, "s2 to learn the outcome", func() bool { return len(c.shards["s2"].part.InDoubt()) == 0 })
	requireClean(t, c.check(20*time.Second))
	if n := c.shards["s2"].sim.commits[d.GetTxid()]; n != 1 {
		t.Fatalf("s2 applied the commit %d times", n)
	}
}

// An Abort that overtakes its Prepare leaves a tombstone: the late Prepare votes NO.
func TestClusterAbortOvertakesPrepare(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 5, tweak: func(_ string, cfg *coordinator.Config) {
		cfg.Limits.DefaultPrepareTimeout = 300 * time.Millisecond
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var held []proto.Message
	var mu sync.Mutex
	c.net.SetHook(func(from, to string, msg proto.Message) bool {
		if cmd, ok := msg.(*smv1.ShardCommand); ok && cmd.GetPrepare() != nil && to == "s2" {
			mu.Lock()
			held = append(held, msg)
			mu.Unlock()
			return false
		}
		return true
	})
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || d.GetReason() != smv1.Reason_REASON_SHARD_TIMEOUT {
		t.Fatalf("decision %v %v", d, err)
	}
	testutil.WaitUntil(t, 5*time.Second, "s2 to take the abort", func() bool {
		return tombstoned(c, "s2", d.GetTxid())
	})
	c.net.SetHook(nil)
	mu.Lock()
	late := held[0].(*smv1.ShardCommand)
	mu.Unlock()
	reply, err := c.shards["s2"].part.HandleCommand(ctx, late)
	if err != nil || reply.GetVote().GetVote() != smv1.VoteValue_VOTE_NO {
		t.Fatalf("late prepare: %v %v, want NO", reply, err)
	}
	requireClean(t, c.check(20*time.Second))
}

func tombstoned(c *testCluster, shard, txid string) bool {
	e, ok, err := c.shards[shard].journal.Get(txid)
	return err == nil && ok && e.State == twophase.JournalAborted
}

// The checker must catch a coordinator that sends decisions before logging them: the
// leader sends COMMIT to s1, loses its quorum before the decision is logged, and the
// next leader presumes abort. With the safe coordinator the same faults are harmless.
func TestCheckerCatchesDeliverBeforeLog(t *testing.T) {
	for _, unsafe := range []bool{true, false} {
		t.Run(fmt.Sprintf("unsafe=%v", unsafe), func(t *testing.T) {
			c := newTestCluster(t, clusterOpts{seed: 6, unsafe: unsafe})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l := c.leader(ctx)
			var once sync.Once
			c.net.SetHook(func(from, to string, msg proto.Message) bool {
				cmd, ok := msg.(*smv1.ShardCommand)
				if !ok || cmd.GetCommit() == nil {
					return true
				}
				// The first Commit seen: cut the leader off from its peers at once.
				once.Do(func() { c.lc.Partition(l) })
				return to == "s1"
			})
			d, _ := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
			t.Logf("decision: %v", d)
			r := c.check(5 * time.Second)
			if unsafe {
				if r.OK() {
					t.Fatal("checker passed a coordinator that delivers before logging")
				}
				found := false
				for _, v := range r.Violations {
					if v.Invariant == "I1" || v.Invariant == "I3" {
						found = true
					}
				}
				if !found {
					t.Fatalf("violations do not include I1/I3:\n%s", r.String())
				}
				t.Logf("caught:\n%s", r.String())
			} else {
				requireClean(t, r)
			}
		})
	}
}

// The leader is cut off from its peers once the votes are in, before it can log the
// decision: it cannot decide, the new leader presumes abort, and every shard aborts.
func TestClusterLeaderPartitionedAfterVotes(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 12})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := c.leader(ctx)
	var votes atomic.Int64
	c.net.SetHook(func(from, to string, msg proto.Message) bool {
		if r, ok := msg.(*smv1.ShardReply); ok && r.GetVote() != nil {
			if votes.Add(1) == 2 {
				c.lc.Partition(l) // both votes delivered, Decide not yet logged
			}
		}
		return true
	})
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil {
		t.Fatal(err)
	}
	// Either the old leader logged COMMIT before the cut (then it must stand) or the new
	// leader presumed abort; what matters is that every shard agrees and the answer holds.
	t.Logf("decision %s %s", d.GetOutcome(), d.GetReason())
	requireClean(t, c.check(20*time.Second))
	again, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || !proto.Equal(again, d) {
		t.Fatalf("decision changed: %v -> %v (%v)", d, again, err)
	}
}
