package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// match builds a proposal of players "player@shard", one per team.
func match(id string, ttl time.Duration, players ...string) *smv1.Proposal {
	p := &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: ttl.Milliseconds()}
	for _, ps := range players {
		var pl, sh string
		for i := range ps {
			if ps[i] == '@' {
				pl, sh = ps[:i], ps[i+1:]
			}
		}
		p.Teams = append(p.Teams, &smv1.Team{Players: []*smv1.Player{{PlayerId: pl, ShardId: sh}}})
	}
	return p
}

func requireClean(t *testing.T, r history.Report) {
	t.Helper()
	if !r.OK() {
		t.Fatalf("invariant violations:\n%s", r.String())
	}
}

func TestClusterCommitConflictAndIdempotency(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("m1: %v %v", d, err)
	}
	if len(d.GetPlayers()) != 2 || d.GetPlayers()[0].GetFencingToken() == 0 {
		t.Fatalf("m1 tokens: %v", d.GetPlayers())
	}
	// x is in m1: the whole of m2 is refused and names x and its holder.
	d2, err := c.propose(ctx, "p", match("m2", time.Minute, "x@s1", "z@s3"))
	if err != nil || d2.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("m2: %v %v", d2, err)
	}
	if got := d2.GetPlayers(); len(got) != 1 || got[0].GetPlayerId() != "x" || got[0].GetHolderTxid() != d.GetTxid() {
		t.Fatalf("m2 details: %v", got)
	}
	// The same proposal id again: the first answer, no new txn.
	again, err := c.propose(ctx, "p", match("m1", time.Minute, "q@s1", "r@s2"))
	if err != nil || again.GetTxid() != d.GetTxid() || !proto.Equal(again, d) {
		t.Fatalf("repeat m1: %v %v, want %v", again, err, d)
	}
	// Invalid proposals fail with a typed error and change nothing.
	_, l, _ := c.lc.Leader(ctx)
	before := l.FSM().Counts()
	for name, p := range map[string]*smv1.Proposal{
		"no players":    {ProposalId: "bad1", MatchTtlMs: 1000},
		"player twice":  match("bad2", time.Minute, "a@s1", "a@s2"),
		"unknown shard": match("bad3", time.Minute, "a@s1", "b@nowhere"),
		"zero ttl":      match("bad4", 0, "a@s1", "b@s2"),
		"negative ttl":  match("bad5", -time.Second, "a@s1", "b@s2"),
		"no id":         match("", time.Minute, "a@s1", "b@s2"),
	} {
		if _, err := c.propose(ctx, "p", p); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	big := match("bad6", time.Minute)
	for i := 0; i < 300; i++ {
		big.Teams = append(big.Teams, &smv1.Team{Players: []*smv1.Player{{PlayerId: fmt.Sprint("b", i), ShardId: "s1"}}})
	}
	if _, err := c.propose(ctx, "p", big); !errors.Is(err, coordinator.ErrInvalid) {
		t.Errorf("too many players: %v", err)
	}
	// Acks of m1/m2 may still land meanwhile; only txns and leases must not change.
	if after := l.FSM().Counts(); after.Txns != before.Txns || after.Leases != before.Leases {
		t.Fatalf("invalid proposals changed state: %+v -> %+v", before, after)
	}
	// Release frees x for a new match with a higher token.
	if err := c.hostCall(ctx, "host", history.OpRelease, d.GetTxid()); err != nil {
		t.Fatal(err)
	}
	d3, err := c.propose(ctx, "p", match("m3", time.Minute, "x@s1", "z@s3"))
	if err != nil || d3.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("m3: %v %v", d3, err)
	}
	if d3.GetPlayers()[0].GetFencingToken() <= d.GetPlayers()[0].GetFencingToken() {
		t.Fatal("token did not increase")
	}
	requireClean(t, c.check(20*time.Second))
}

// workload runs proposers over a pool of players (a hot few force contention) and match
// hosts that renew and release, until ctx ends. Player i lives on shard i%shards+1.
func (c *testCluster) workload(ctx context.Context, workers, pool int, seed int64) (committed, aborted *atomic.Int64, wait func()) {
	committed, aborted = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	shards := len(c.shards)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(w)))
			for k := 0; ctx.Err() == nil; k++ {
				a := rng.Intn(pool)
				b := rng.Intn(pool)
				if a%shards == b%shards {
					b = (b + 1) % pool
					if a == b {
						continue
					}
				}
				ttl := time.Duration(300+rng.Intn(700)) * time.Millisecond
				p := match(fmt.Sprintf("w%d-%d", w, k), ttl,
					fmt.Sprintf("p%d@s%d", a, a%shards+1), fmt.Sprintf("p%d@s%d", b, b%shards+1))
				cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				d, err := c.propose(cctx, fmt.Sprint("w", w), p)
				cancel()
				if err != nil {
					continue
				}
				if d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
					aborted.Add(1)
					continue
				}
				committed.Add(1)
				// The match host: renew a couple of times, then release or let it expire.
				wg.Add(1)
				go func(txid string, renews int, release bool) {
					defer wg.Done()
					for i := 0; i < renews; i++ {
						select {
						case <-time.After(ttl / 3):
						case <-ctx.Done():
							return
						}
						hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						err := c.hostCall(hctx, "host", history.OpRenew, txid)
						cancel()
						if err != nil {
							return
						}
					}
					if release {
						hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						_ = c.hostCall(hctx, "host", history.OpRelease, txid)
						cancel()
					}
				}(d.GetTxid(), rng.Intn(3), rng.Intn(3) > 0)
			}
		}(w)
	}
	return committed, aborted, wg.Wait
}

func TestClusterWorkloadUnderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	c := newTestCluster(t, clusterOpts{seed: 7, rejectRate: 0.05})
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	committed, aborted, wait := c.workload(ctx, 8, 60, 100)
	// Fault schedule: kill the leader, restart it; isolate the leader, heal; with message
	// loss, duplication and reordering on the participant network throughout.
	_ = c.net.SetFaults(twophase.InmemFaults{DropRate: 0.05, DuplicateRate: 0.1, MaxDelay: 10 * time.Millisecond})
	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer fcancel()
	pause := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	for round := 0; round < 4 && ctx.Err() == nil; round++ {
		pause(800 * time.Millisecond)
		l := c.leader(fctx)
		if round%2 == 0 {
			if err := c.lc.Kill(l); err != nil {
				t.Logf("kill: %v", err)
			}
			pause(600 * time.Millisecond)
			if err := c.lc.Start(l); err != nil {
				t.Fatal(err)
			}
		} else {
			c.isolate(l)
			pause(600 * time.Millisecond)
			c.heal()
			_ = c.net.SetFaults(twophase.InmemFaults{DropRate: 0.05, DuplicateRate: 0.1, MaxDelay: 10 * time.Millisecond})
		}
	}
	<-ctx.Done()
	wait()
	r := c.check(30 * time.Second)
	t.Logf("committed=%d aborted=%d stats=%v", committed.Load(), aborted.Load(), r.Stats)
	requireClean(t, r)
	if committed.Load() == 0 || aborted.Load() == 0 {
		t.Fatalf("workload too thin to prove anything: committed=%d aborted=%d", committed.Load(), aborted.Load())
	}
}

// Lease time runs on the leader's monotonic clock only: wall-clock jumps change
// nothing, and a new leader gives every lease its full TTL from takeover.
func TestClusterLeaseExpiryFakeClock(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newTestCluster(t, clusterOpts{seed: 8, fake: fake})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 10 * time.Second
	d, err := c.propose(ctx, "p", match("m1", ttl, "x@s1", "y@s2"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("decision %v %v", d, err)
	}
	leased := func() bool {
		_, n, err := c.lc.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := n.FSM().Lease("x")
		return ok
	}
	// advance moves the fake clock in scan-sized steps so the leader's ticker sees them.
	advance := func(d time.Duration) {
		for step := 20 * time.Millisecond; d > 0; d -= step {
			fake.Advance(min(step, d))
		}
	}
	advance(100 * time.Millisecond) // the leader's first scan sees the match
	for _, n := range c.clocks {
		n.SetOffset(-5 * time.Hour) // every wall clock jumps back, then forward
	}
	advance(5 * time.Second)
	for _, n := range c.clocks {
		n.SetOffset(+7 * time.Hour)
	}
	if !leased() {
		t.Fatal("lease gone after a wall-clock jump")
	}
	// Leader change at t≈5s: the new leader restarts the TTL.
	l := c.leader(ctx)
	if err := c.lc.Kill(l); err != nil {
		t.Fatal(err)
	}
	c.leader(ctx)
	advance(100 * time.Millisecond)
	advance(ttl - time.Second) // 14s after commit, 9.9s after takeover: must still hold
	if !leased() {
		t.Fatal("lease expired early after leader change")
	}
	if err := c.lc.Start(l); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Second)
	testutil.WaitUntilEvery(t, 10*time.Second, 5*time.Millisecond, "expiry", func() bool {
		fake.Advance(20 * time.Millisecond)
		return !leased()
	})
	requireClean(t, c.check(20*time.Second))
}

// Snapshots: a follower that missed more than the trailing log catches up by snapshot
// install, another restarts from its own snapshot plus log replay, and every replica
// ends with byte-identical state.
func TestClusterSnapshotRestoreReplay(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 9, memJournal: true, tweak: func(_ string, cfg *coordinator.Config) {
		cfg.TrailingLogs = 8
		cfg.SnapshotThreshold = 1 << 30 // only explicit snapshots
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			p := match(fmt.Sprintf("%s%d", prefix, i), time.Minute, fmt.Sprintf("%sa%d@s1", prefix, i), fmt.Sprintf("%sb%d@s2", prefix, i))
			if _, err := c.propose(ctx, "p", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	run("a", 20)
	l := c.leader(ctx)
	f := (l + 1) % 3
	other := (l + 2) % 3
	if err := c.lc.Kill(f); err != nil {
		t.Fatal(err)
	}
	run("b", 30)
	// Snapshot and compact on the leader and the other follower.
	for _, i := range []int{l, other} {
		if err := c.lc.Node(i).Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %d: %v", i, err)
		}
	}
	if err := c.lc.Start(f); err != nil { // must install the leader's snapshot
		t.Fatal(err)
	}
	run("c", 10)
	if err := c.lc.Kill(other); err != nil {
		t.Fatal(err)
	}
	if err := c.lc.Start(other); err != nil { // restores its own snapshot, replays the rest
		t.Fatal(err)
	}
	run("d", 10)
	if !c.settle(ctx) {
		t.Fatal("did not settle")
	}
	// Poll: entries still in flight (acks) may land on one node before another.
	var want *smv1.FSMState
	testutil.WaitUntil(t, 10*time.Second, "identical state on every replica", func() bool {
		want = c.lc.Node(0).FSM().State()
		for i := 1; i < 3; i++ {
			if !proto.Equal(want, c.lc.Node(i).FSM().State()) {
				return false
			}
		}
		return true
	})
	if len(want.Txns) < 70 {
		t.Fatalf("only %d txns", len(want.Txns))
	}
	if c.lc.Node(f).Raft().Stats()["last_snapshot_index"] == "0" {
		t.Fatal("the lagging follower did not install a snapshot")
	}
	requireClean(t, c.check(20*time.Second))
}

// Status is a linearizable read: only the leader answers; followers say who leads.
func TestClusterStatusOnlyOnLeader(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 13})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := c.propose(ctx, "p", match("m1", time.Minute, "x@s1", "y@s2"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.leader(ctx)
	rec, err := c.lc.Node(l).Status(ctx, "m1") // by proposal id
	if err != nil || rec.GetTxid() != d.GetTxid() {
		t.Fatalf("status by proposal id: %v %v", rec, err)
	}
	if _, err := c.lc.Node(l).Status(ctx, "nope"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	var nle *coordinator.NotLeaderError
	if _, err := c.lc.Node((l+1)%3).Status(ctx, d.GetTxid()); !errors.As(err, &nle) || nle.LeaderID != c.lc.NodeID(l) {
		t.Fatalf("follower status: %v", err)
	}
	// A new leader on a quiet cluster answers at once (its no-op entries never reach
	// the FSM, so it must not wait for them).
	if !c.settle(ctx) {
		t.Fatal("did not settle")
	}
	if err := c.lc.Kill(l); err != nil {
		t.Fatal(err)
	}
	nl := c.leader(ctx)
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if rec, err := c.lc.Node(nl).Status(sctx, d.GetTxid()); err != nil || rec.GetTxid() != d.GetTxid() {
		t.Fatalf("status on the new leader: %v %v", rec, err)
	}
}

// Clock drift: a leader whose clock runs fast within ρ never takes a lease early; one
// that runs far faster than ρ does, and the I7 checker reports it.
func TestClusterLeaseDrift(t *testing.T) {
	for _, tc := range []struct {
		rate   float64
		wantI7 bool
	}{{1.01, false}, {1.6, true}} {
		t.Run(fmt.Sprintf("rate=%v", tc.rate), func(t *testing.T) {
			c := newTestCluster(t, clusterOpts{seed: 14, memJournal: true})
			for _, clk := range c.clocks {
				if err := clk.SetRate(tc.rate); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var txids []string
			for i := 0; i < 5; i++ {
				d, err := c.propose(ctx, "p", match(fmt.Sprint("m", i), 500*time.Millisecond, fmt.Sprintf("x%d@s1", i), fmt.Sprintf("y%d@s2", i)))
				if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
					t.Fatalf("%v %v", d, err)
				}
				txids = append(txids, d.GetTxid())
			}
			testutil.WaitUntil(t, 10*time.Second, "every match to expire", func() bool {
				_, l, err := c.lc.Leader(ctx)
				if err != nil {
					return false
				}
				return len(l.FSM().ActiveMatches()) == 0
			})
			r := c.check(20 * time.Second)
			if got := r.Has(history.I7); got != tc.wantI7 {
				t.Fatalf("I7 reported = %v, want %v:\n%s", got, tc.wantI7, r.String())
			}
			if !tc.wantI7 {
				requireClean(t, r)
			}
		})
	}
}

// An operator aborts a transaction stuck waiting for a shard's vote: the abort is
// logged, delivered at once (not after the prepare timeout), and a decided txn cannot
// be force-aborted.
func TestClusterForceAbort(t *testing.T) {
	c := newTestCluster(t, clusterOpts{seed: 15, tweak: func(_ string, cfg *coordinator.Config) {
		cfg.Limits.DefaultPrepareTimeout = time.Minute
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.net.SetHook(dropTo("s2", "prepare"))
	l := c.leader(ctx)
	node := c.lc.Node(l)
	done := make(chan *smv1.Decision, 1)
	go func() {
		d, _ := c.propose(ctx, "p", match("stuck", time.Minute, "x@s1", "y@s2"))
		done <- d
	}()
	var txid string
	testutil.WaitUntil(t, 10*time.Second, "the txn to be preparing", func() bool {
		rec, ok := node.FSM().TxnByProposal("stuck")
		if ok {
			txid = rec.GetTxid()
		}
		return ok
	})
	if err := c.lc.Node((l+1)%3).ForceAbort(ctx, txid); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Fatalf("follower force-abort: %v", err)
	}
	if err := node.ForceAbort(ctx, "tx-nope"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Fatalf("unknown txid: %v", err)
	}
	start := time.Now()
	if err := node.ForceAbort(ctx, txid); err != nil {
		t.Fatal(err)
	}
	d := <-done
	if d.GetReason() != smv1.Reason_REASON_OPERATOR_ABORT || time.Since(start) > 10*time.Second {
		t.Fatalf("decision %v after %s", d, time.Since(start))
	}
	if err := node.ForceAbort(ctx, txid); !errors.Is(err, coordinator.ErrConflict) {
		t.Fatalf("second force-abort: %v", err)
	}
	c.net.SetHook(nil)
	testutil.WaitUntil(t, 10*time.Second, "s1 to release its reservation", func() bool { return len(c.shards["s1"].part.InDoubt()) == 0 })
	// The run ends, and counts its abort, once both shards' acks are in the log: s2's
	// may still be on its way when s1 has released.
	testutil.WaitUntil(t, 10*time.Second, "the driver to count the abort", func() bool {
		st, ok := node.DriverStats()
		return ok && st.Aborted > 0
	})
	requireClean(t, c.check(20*time.Second))
}

// TestClusterRetentionCap: past Config.MaxRetained finished txns the leader forgets
// the oldest long before their Retention, on every node, and keeps the youngest; a
// node built with SnapshotFormat 1 writes format 1.
func TestClusterRetentionCap(t *testing.T) {
	const keep = 3
	c := newTestCluster(t, clusterOpts{seed: 21, tweak: func(_ string, cfg *coordinator.Config) {
		cfg.Retention, cfg.MaxRetained, cfg.SnapshotFormat = time.Hour, keep, 1
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := c.propose(ctx, "p", match("hold", time.Minute, "h@s1", "i@s2")); err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("hold: %v %v", d, err)
	}
	// Every one names h, who is in a match: aborted at Begin, finished at once.
	const n = 8
	for i := range n {
		d, err := c.propose(ctx, "p", match(fmt.Sprintf("busy-%d", i), time.Minute, "h@s1", fmt.Sprintf("b%d@s2", i)))
		if err != nil || d.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
			t.Fatalf("busy-%d: %v %v", i, d, err)
		}
	}
	for i := range c.lc.Size() {
		f := c.lc.Node(i).FSM()
		// A follower may still be applying: wait for exactly the youngest keep (and the
		// live match), not just for their number.
		retained := func() (out []int) {
			for j := range n {
				if _, ok := f.TxnByProposal(fmt.Sprintf("busy-%d", j)); ok {
					out = append(out, j)
				}
			}
			return out
		}
		testutil.WaitUntil(t, 10*time.Second, fmt.Sprintf("node %d to keep the youngest %d finished txns", i, keep), func() bool {
			var want []int
			for j := n - keep; j < n; j++ {
				want = append(want, j)
			}
			return f.Counts().Txns == 1+keep && slices.Equal(retained(), want)
		})
	}
	if _, ok := c.lc.Node(0).FSM().TxnByProposal("hold"); !ok {
		t.Error("the live match was forgotten")
	}
	// Format 1 is a protobuf FSMState; format 2 starts with a zero byte.
	snap, err := c.lc.Node(c.leader(ctx)).OpenSnapshot(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var file, data bytes.Buffer
	if _, err := snap.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	_ = snap.Close()
	if _, err := coordinator.ReadSnapshot(&file, &data, 1<<20); err != nil {
		t.Fatal(err)
	}
	var st smv1.FSMState
	if b := data.Bytes(); len(b) == 0 || b[0] == 0 || proto.Unmarshal(b, &st) != nil || len(st.GetTxns()) != 1+keep {
		t.Errorf("snapshot of a SnapshotFormat 1 node: %d bytes, first %x, %d txns: want format 1 holding %d", len(b), b[:min(1, len(b))], len(st.GetTxns()), 1+keep)
	}
}
