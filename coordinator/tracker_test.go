package coordinator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// fakeView is an FSM as start reads it; during runs it on the first read, as if the
// FSM applied entries while the tracker rebuilt.
type fakeView struct {
	matches  []lease.Match
	finished []string
	during   func()
}

func (v *fakeView) ActiveMatches() []lease.Match {
	if v.during != nil {
		v.during()
		v.during = nil
	}
	return v.matches
}
func (v *fakeView) Finished() []string { return v.finished }

type fakeMono struct{ t time.Duration }

func (c *fakeMono) now() time.Duration { return c.t }

func activated(txid string, seq uint64, ttl time.Duration) Event {
	return Event{Kind: EventLeaseActivated, TxID: txid, Leases: []lease.Lease{{Player: "p-" + txid, TxID: txid, TTL: ttl, RenewSeq: seq}}}
}

func renewed(txid string, seq uint64, ttl time.Duration) Event {
	e := activated(txid, seq, ttl)
	e.Kind = EventLeaseRenewed
	return e
}

func expiries(cmds []*smv1.Command) []string {
	var out []string
	for _, c := range cmds {
		e := c.GetExpire()
		out = append(out, fmt.Sprintf("%s@%d", e.GetTxid(), e.GetRenewSeq()))
	}
	slices.Sort(out)
	return out
}

func TestTrackerExpiresAfterTTLTimesOnePlusRho(t *testing.T) {
	clk := &fakeMono{}
	tr := newTracker(0.5, clk.now)
	tr.start(&fakeView{})
	tr.observe(activated("a", 0, 10*time.Second))
	clk.t = 2 * time.Second
	tr.observe(activated("b", 0, 10*time.Second))

	if got := tr.dueExpiries(15*time.Second - 1); len(got) != 0 {
		t.Fatalf("due before ttl·(1+rho): %v", expiries(got))
	}
	if got := expiries(tr.dueExpiries(15 * time.Second)); !slices.Equal(got, []string{"a@0"}) {
		t.Fatalf("at 15s: %v, want a@0", got)
	}
	// Not applied yet (no Expired event): proposed again after trackerRetry, not before.
	if got := tr.dueExpiries(15*time.Second + trackerRetry - 1); len(got) != 0 {
		t.Fatalf("re-proposed too soon: %v", expiries(got))
	}
	if got := expiries(tr.dueExpiries(17 * time.Second)); !slices.Equal(got, []string{"a@0", "b@0"}) {
		t.Fatalf("at 17s: %v, want a@0 b@0", got)
	}
	tr.observe(Event{Kind: EventLeaseExpired, TxID: "a"})
	if got := expiries(tr.dueExpiries(time.Hour)); !slices.Equal(got, []string{"b@0"}) {
		t.Fatalf("after a expired: %v, want only b@0", got)
	}
}

func TestTrackerRenewRestartsTheClock(t *testing.T) {
	clk := &fakeMono{}
	tr := newTracker(0, clk.now)
	tr.start(&fakeView{})
	tr.observe(activated("a", 0, 10*time.Second))
	clk.t = 8 * time.Second
	tr.observe(renewed("a", 1, 10*time.Second))
	if got := tr.dueExpiries(17 * time.Second); len(got) != 0 {
		t.Fatalf("renewed at 8s, due at 17s: %v", expiries(got))
	}
	if got := expiries(tr.dueExpiries(18 * time.Second)); !slices.Equal(got, []string{"a@1"}) {
		t.Fatalf("at 18s: %v, want a@1 (the old seq's deadline is stale)", got)
	}
	// A replayed older renew does not move the clock back or forward.
	clk.t = 30 * time.Second
	tr.observe(renewed("a", 1, 10*time.Second))
	if _, due, _ := tr.size(); due != 1 {
		t.Fatalf("replayed renew pushed a deadline: %d due entries", due)
	}
	tr.observe(Event{Kind: EventLeaseReleased, TxID: "a"})
	if got := tr.dueExpiries(time.Hour); len(got) != 0 {
		t.Fatalf("released match proposed for expiry: %v", expiries(got))
	}
}

func TestTrackerRetention(t *testing.T) {
	clk := &fakeMono{}
	tr := newTracker(0, clk.now)
	tr.start(&fakeView{finished: []string{"old"}})
	clk.t = time.Second
	tr.observe(Event{Kind: EventDone, TxID: "aborted"}) // no leases: finished at once
	tr.observe(activated("m", 0, time.Hour))
	tr.observe(Event{Kind: EventDone, TxID: "m"}) // DONE, leases live: not yet
	const keep = 10 * time.Second
	if got := tr.dueForgets(keep-1, keep, 0); got != nil {
		t.Fatalf("forgot before the retention: %v", got)
	}
	if got := tr.dueForgets(keep, keep, 0); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("at %s: %v, want [old]", keep, got)
	}
	clk.t = 5 * time.Second
	tr.observe(Event{Kind: EventLeaseReleased, TxID: "m"})
	if got := tr.dueForgets(time.Second+keep, keep, 0); !slices.Equal(got, []string{"aborted"}) {
		t.Fatalf("%v, want [aborted]", got)
	}
	tr.retry([]string{"aborted"}, time.Second+keep, keep)
	if got := tr.dueForgets(5*time.Second+keep, keep, 0); !slices.Equal(got, []string{"m", "aborted"}) {
		t.Fatalf("%v, want [m aborted] (m finished when its leases ended, aborted retried)", got)
	}
}

// Past maxRetained the oldest finished txns are forgotten before their retention, the
// youngest maxRetained kept; within it, retention alone decides.
func TestTrackerRetentionCountCap(t *testing.T) {
	clk := &fakeMono{}
	tr := newTracker(0, clk.now)
	tr.start(&fakeView{})
	for i := range 7 {
		clk.t = time.Duration(i) * time.Second
		tr.observe(Event{Kind: EventDone, TxID: fmt.Sprintf("t%d", i)})
	}
	const keep = time.Hour
	if got := tr.dueForgets(10*time.Second, keep, 0); got != nil {
		t.Fatalf("no cap: forgot %v within the retention", got)
	}
	if got := tr.dueForgets(10*time.Second, keep, 7); got != nil {
		t.Fatalf("at the cap: forgot %v", got)
	}
	if got := tr.dueForgets(10*time.Second, keep, 4); !slices.Equal(got, []string{"t0", "t1", "t2"}) {
		t.Fatalf("cap 4 of 7: forgot %v, want the three oldest", got)
	}
	if _, _, n := tr.size(); n != 4 {
		t.Fatalf("%d retained after the cap, want 4", n)
	}
	// Both rules at once: t3 is past its retention (it finished at 3s), and of t3..t6 a
	// cap of 2 keeps only t5 and t6: t3 and t4 go.
	if got := tr.dueForgets(3*time.Second+keep, keep, 2); !slices.Equal(got, []string{"t3", "t4"}) {
		t.Fatalf("retention and cap: forgot %v, want [t3 t4]", got)
	}
}

func TestTrackerForgetsInBoundedBatches(t *testing.T) {
	tr := newTracker(0, (&fakeMono{}).now)
	ids := make([]string, maxForget+10)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d", i)
	}
	tr.start(&fakeView{finished: ids})
	if got := tr.dueForgets(time.Hour, time.Second, 0); len(got) != maxForget {
		t.Fatalf("first batch %d, want %d", len(got), maxForget)
	}
	if got := tr.dueForgets(time.Hour, time.Second, 0); len(got) != 10 {
		t.Fatalf("second batch %d, want 10", len(got))
	}
}

func TestTrackerStartGivesFullTTLFromTakeoverAndReplaysEventsSeenDuringIt(t *testing.T) {
	clk := &fakeMono{t: 100 * time.Second}
	tr := newTracker(0, clk.now)
	v := &fakeView{
		matches: []lease.Match{{TxID: "a", TTL: 10 * time.Second, RenewSeq: 3}, {TxID: "gone", TTL: time.Second}},
		during: func() {
			// Applied while start reads the FSM: a renew of a, an expiry of "gone" and
			// a new match; and a stale replay of a's activation.
			tr.observe(renewed("a", 4, 10*time.Second))
			tr.observe(Event{Kind: EventLeaseExpired, TxID: "gone"})
			tr.observe(activated("c", 0, 5*time.Second))
			tr.observe(renewed("a", 3, 10*time.Second))
		},
	}
	tr.start(v)
	if got := tr.dueExpiries(105*time.Second - 1); len(got) != 0 {
		t.Fatalf("due before a full TTL from takeover: %v", expiries(got))
	}
	if got := expiries(tr.dueExpiries(110 * time.Second)); !slices.Equal(got, []string{"a@4", "c@0"}) {
		t.Fatalf("at takeover+10s: %v, want a@4 c@0 (gone expired while rebuilding)", got)
	}
}

func TestTrackerIdleUnlessLeadingAndStaleAfterRestore(t *testing.T) {
	tr := newTracker(0, (&fakeMono{}).now)
	tr.observe(activated("a", 0, time.Second))
	tr.observe(Event{Kind: EventDone, TxID: "x"})
	if a, d, f := tr.size(); a+d+f != 0 {
		t.Fatalf("a node that does not lead tracked %d/%d/%d", a, d, f)
	}
	if got := tr.dueExpiries(time.Hour); got != nil {
		t.Fatalf("not leading, yet expiries: %v", got)
	}
	tr.start(&fakeView{})
	tr.observe(activated("a", 0, time.Second))
	tr.observe(Event{Kind: EventRestored})
	if got := tr.dueExpiries(time.Hour); got != nil {
		t.Fatalf("after a restore the index is stale until start; got %v", expiries(got))
	}
	tr.start(&fakeView{matches: []lease.Match{{TxID: "b", TTL: time.Second}}})
	if got := expiries(tr.dueExpiries(time.Hour)); !slices.Equal(got, []string{"b@0"}) {
		t.Fatalf("after start again: %v, want b@0", got)
	}
	tr.stop()
	if a, d, f := tr.size(); a+d+f != 0 {
		t.Fatalf("stop kept %d/%d/%d", a, d, f)
	}
}

// BenchmarkTrackerTick is the leader's per-tick cost with 500,000 live matches and
// nothing due: what replaced scanning every match (BenchmarkActiveMatchesScan).
func BenchmarkTrackerTick(b *testing.B) {
	const n = 500_000
	ms := make([]lease.Match, n)
	for i := range ms {
		ms[i] = lease.Match{TxID: fmt.Sprintf("tx-%d-0", i), TTL: time.Hour}
	}
	tr := newTracker(0.01, (&fakeMono{}).now)
	tr.start(&fakeView{matches: ms})
	b.ResetTimer()
	for b.Loop() {
		if tr.dueExpiries(time.Minute) != nil || tr.dueForgets(time.Minute, 10*time.Minute, 0) != nil {
			b.Fatal("something due")
		}
	}
}

// BenchmarkActiveMatchesScan is what each tick cost before the tracker: listing every
// live match of a table holding 500,000 (1 M leases).
func BenchmarkActiveMatchesScan(b *testing.B) {
	const n = 500_000
	tbl := lease.NewTable()
	for i := range n {
		txid := fmt.Sprintf("tx-%d-0", i)
		if _, err := tbl.Grant(txid, []string{"a" + txid, "b" + txid}, uint64(i+1), time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := tbl.Activate(txid); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if len(tbl.ActiveMatches()) != n {
			b.Fatal("wrong count")
		}
	}
}
