package coordinator

import (
	"container/heap"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tracker is the leader's index of what its periodic duties act on: when each live
// match's leases are due to expire, and since when each finished transaction has been
// retained. It follows the FSM's events as they are applied, so each tick of the leader
// costs what is due, not a scan of every match and transaction (a scan every
// Config.ExpiryScan was O(active matches + retained txns): at a million leases, seconds
// of CPU per tick).
//
// Only a leader tracks. A node that starts leading rebuilds the index once from the
// FSM (start), which also gives every live match its full TTL from takeover: a match's
// clock (re)starts whenever the leader first sees it or sees its renew_seq change, and
// its leases end ttl·(1+rho) after that point: late is safe, early would double-book.
// Between start and stop the index is kept current by observe, called with the FSM
// lock held for every event in log order; a snapshot restore makes it stale until the
// next start.
type tracker struct {
	rho float64
	now func() time.Duration // the leader's monotonic clock (or the broken wall clock)

	mu         sync.Mutex
	tracking   bool    // leading and rebuilt: events are applied
	rebuilding bool    // start is scanning the FSM: events are kept in pending
	pending    []Event // events seen while rebuilding

	active   map[string]liveMatch // ACTIVE matches: renew seq and TTL
	doneLive map[string]bool      // DONE txns whose leases are still live
	due      deadlineHeap         // (txid, seq) by deadline; stale entries dropped lazily
	finished []retainedTxn        // finished txns, oldest first
}

type liveMatch struct {
	seq uint64
	ttl time.Duration
}

type retainedTxn struct {
	txid  string
	since time.Duration
}

type deadline struct {
	at   time.Duration
	txid string
	seq  uint64
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// trackerRetry is how soon an Expire or Forget the log did not take is proposed again.
const trackerRetry = time.Second

// maxForget bounds the txids of one Forget command.
const maxForget = 4096

func newTracker(rho float64, now func() time.Duration) *tracker {
	return &tracker{rho: rho, now: now}
}

// fsmView is what start reads from the FSM.
type fsmView interface {
	ActiveMatches() []lease.Match
	Finished() []string
}

// start rebuilds the index from f and begins tracking: every live match gets its full
// TTL from now, every finished txn its full retention from now. Events applied while
// it reads f are replayed over what it read; they are idempotent here (a renew seq only
// grows, a match that ended stays gone), so one read twice does no harm.
func (t *tracker) start(f fsmView) {
	t.mu.Lock()
	t.tracking, t.rebuilding, t.pending = false, true, nil
	t.mu.Unlock()

	matches := f.ActiveMatches()
	finished := f.Finished()

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.active = make(map[string]liveMatch, len(matches))
	t.doneLive = make(map[string]bool)
	t.due = make(deadlineHeap, 0, len(matches))
	// Which live matches are already DONE is not known from the scan; marking them
	// all makes each one finished when its leases end, and Forget of a txn that is not
	// DONE yet is a no-op in the FSM (its EventDone queues it again), so none is
	// forgotten early.
	for _, m := range matches {
		t.active[m.TxID] = liveMatch{seq: m.RenewSeq, ttl: m.TTL}
		t.doneLive[m.TxID] = true
		t.due = append(t.due, deadline{at: now + t.life(m.TTL), txid: m.TxID, seq: m.RenewSeq})
	}
	heap.Init(&t.due)
	t.finished = make([]retainedTxn, 0, len(finished))
	for _, id := range finished {
		t.finished = append(t.finished, retainedTxn{txid: id, since: now})
	}
	for _, e := range t.pending {
		t.applyLocked(e, now)
	}
	t.pending = nil
	t.rebuilding, t.tracking = false, true
}

// stop ends tracking (leadership lost) and frees the index.
func (t *tracker) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tracking, t.rebuilding, t.pending = false, false, nil
	t.active, t.doneLive, t.due, t.finished = nil, nil, nil, nil
}

// observe is the FSM observer hook: it must be quick and must not call the FSM.
func (t *tracker) observe(e Event) {
	switch e.Kind {
	case EventLeaseActivated, EventLeaseRenewed, EventLeaseReleased, EventLeaseExpired, EventDone, EventRestored:
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case e.Kind == EventRestored:
		// The state jumped: what was tracked no longer holds. The leader's duties
		// restart after a restore, and start rebuilds.
		t.tracking, t.pending = false, nil
	case t.rebuilding:
		t.pending = append(t.pending, e)
	case t.tracking:
		t.applyLocked(e, t.now())
	}
}

func (t *tracker) life(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl) * (1 + t.rho))
}

func (t *tracker) applyLocked(e Event, now time.Duration) {
	switch e.Kind {
	case EventLeaseActivated, EventLeaseRenewed:
		if len(e.Leases) == 0 {
			return
		}
		l := e.Leases[0]
		if cur, ok := t.active[e.TxID]; ok && cur.seq >= l.RenewSeq && e.Kind == EventLeaseRenewed {
			return // already counted from this renew (a replayed event)
		}
		t.active[e.TxID] = liveMatch{seq: l.RenewSeq, ttl: l.TTL}
		heap.Push(&t.due, deadline{at: now + t.life(l.TTL), txid: e.TxID, seq: l.RenewSeq})
	case EventLeaseReleased, EventLeaseExpired:
		delete(t.active, e.TxID)
		if t.doneLive[e.TxID] {
			delete(t.doneLive, e.TxID)
			t.finished = append(t.finished, retainedTxn{txid: e.TxID, since: now})
		}
	case EventDone:
		if _, live := t.active[e.TxID]; live {
			t.doneLive[e.TxID] = true
		} else {
			t.finished = append(t.finished, retainedTxn{txid: e.TxID, since: now})
		}
	}
}

// dueExpiries returns the Expire commands due at now. Each stays in the index, due
// again after trackerRetry, until the expiry (or a renew or release) is applied.
func (t *tracker) dueExpiries(now time.Duration) []*smv1.Command {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tracking {
		return nil
	}
	var out []*smv1.Command
	var again []deadline
	for len(t.due) > 0 && t.due[0].at <= now {
		d := heap.Pop(&t.due).(deadline)
		if cur, ok := t.active[d.txid]; !ok || cur.seq != d.seq {
			continue // renewed, released or expired since
		}
		out = append(out, &smv1.Command{Op: &smv1.Command_Expire{Expire: &smv1.Expire{Txid: d.txid, RenewSeq: d.seq}}})
		d.at = now + trackerRetry
		again = append(again, d)
	}
	for _, d := range again {
		heap.Push(&t.due, d)
	}
	return out
}

// dueForgets returns the finished txids to forget at now, oldest first, at most
// maxForget, and takes them out of the index: every one retained for at least
// retention, and, while more than maxRetained (> 0) are retained, the oldest beyond that
// count. retry puts back those the log refused.
func (t *tracker) dueForgets(now, retention time.Duration, maxRetained int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tracking {
		return nil
	}
	over := 0
	if maxRetained > 0 {
		over = len(t.finished) - maxRetained
	}
	n := 0
	for n < len(t.finished) && n < maxForget && (n < over || now-t.finished[n].since >= retention) {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range n {
		out[i] = t.finished[i].txid
	}
	t.finished = t.finished[n:]
	if len(t.finished) == 0 {
		t.finished = nil // let the backing array go
	}
	return out
}

// retry puts txids back to be forgotten again about trackerRetry after now. They go
// to the back of the queue, so they may wait behind younger txns: late, never early.
func (t *tracker) retry(txids []string, now, retention time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tracking {
		return
	}
	since := now - retention + trackerRetry
	for _, id := range txids {
		t.finished = append(t.finished, retainedTxn{txid: id, since: since})
	}
}

// size reports what is tracked, for tests.
func (t *tracker) size() (active, due, finished int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active), len(t.due), len(t.finished)
}

// teeObserver hands every FSM event to the tracker and to the configured observer.
type teeObserver struct {
	t    *tracker
	next Observer
}

func (o teeObserver) Observe(e Event) {
	o.t.observe(e)
	if o.next != nil {
		o.next.Observe(e)
	}
}
