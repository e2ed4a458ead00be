package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestCheckerCatchesWallClockExpiry: a leader built with Sabotage.WallClockExpiry
// measures lease TTLs on its wall clock, so stepping that clock forward by an hour
// expires a 10s lease at once, and the I7 checker must say so. On a correct leader
// the same steps change nothing: the lease lasts its TTL and the history is clean.
func TestCheckerCatchesWallClockExpiry(t *testing.T) {
	for _, unsafe := range []bool{true, false} {
		t.Run(fmt.Sprintf("unsafe=%v", unsafe), func(t *testing.T) {
			fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			c := newTestCluster(t, clusterOpts{seed: 16, fake: fake, memJournal: true,
				wallClockExpiry: unsafe})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const ttl = 10 * time.Second
			d, err := c.propose(ctx, "p", match("m1", ttl, "x@s1", "y@s2"))
			if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
				t.Fatalf("decision %v %v", d, err)
			}
			l := c.leader(ctx)
			leased := func() bool {
				_, ok := c.lc.Node(l).FSM().Lease("x")
				return ok
			}
			// step advances the fake clock by one scan interval and steps the leader's
			// wall clock another hour forward. The leader notices the match on one of
			// its scans (asynchronously); every step after that is a forward jump over
			// the lease's whole TTL.
			lclk, off := c.clocks[c.lc.NodeID(l)], time.Duration(0)
			step := func() {
				fake.Advance(20 * time.Millisecond)
				off += time.Hour
				lclk.SetOffset(off)
			}
			// Either way the lease ends: at once on the unsafe leader, after its TTL of
			// reference time on a correct one (I7 below checks which).
			testutil.WaitUntilEvery(t, 20*time.Second, 5*time.Millisecond, "the lease to expire", func() bool {
				step()
				return !leased()
			})
			r := c.check(20 * time.Second)
			if got := r.Has(history.I7); got != unsafe {
				t.Fatalf("I7 reported = %v, want %v:\n%s", got, unsafe, r.String())
			}
			if unsafe {
				t.Logf("caught:\n%s", r.String())
			} else {
				requireClean(t, r)
			}
		})
	}
}
