package history

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Recorder collects a History while a test or chaos run is going. It is safe for
// concurrent use. Every time it stamps comes from the injected now, which must be the
// run's one reference monotonic clock (for example a clock.Clock's Mono), never a
// node's skewable clock.
type Recorder struct {
	now func() time.Duration

	mu      sync.Mutex
	h       History
	lastSeq map[string]uint64 // shard -> highest Seq recorded
}

// NewRecorder returns an empty recorder. rho is the clock rate error bound the system
// under test was configured with; it goes into the history for the I7 check.
func NewRecorder(now func() time.Duration, rho float64) *Recorder {
	return &Recorder{
		now:     now,
		h:       History{Version: FormatVersion, Rho: rho},
		lastSeq: make(map[string]uint64),
	}
}

// Call is an invoked Op waiting for its result.
type Call struct {
	r *Recorder
	i int // index into r.h.Ops
}

// Reply is what a client call returned.
type Reply struct {
	Result OpResult
	TxID   string            // if empty, the TxID given at Invoke is kept
	Reason string            // abort reason
	Tokens map[string]uint64 // propose committed: fencing token per player
}

// Invoke records the start of a client call and stamps its Invoke time. Result fields
// in op are ignored. Call Return on the handle when the call returns; a call that never
// returns stays Returned=false.
func (r *Recorder) Invoke(op Op) *Call {
	op.Players = slices.Clone(op.Players)
	op.Return, op.Returned, op.Result, op.Reason, op.Tokens = 0, false, "", "", nil
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Invoke = r.now()
	r.h.Ops = append(r.h.Ops, op)
	return &Call{r: r, i: len(r.h.Ops) - 1}
}

// Return records the call's result and stamps its Return time. Only the first Return
// of a call counts; later ones are ignored and reported false.
func (c *Call) Return(rep Reply) bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	op := &c.r.h.Ops[c.i]
	if op.Returned {
		return false
	}
	op.Return = c.r.now()
	op.Returned = true
	op.Result = rep.Result
	op.Reason = rep.Reason
	op.Tokens = maps.Clone(rep.Tokens)
	if rep.TxID != "" {
		op.TxID = rep.TxID
	}
	return true
}

// RecordShard records an effect a shard applied and stamps its At. The shard must
// call it in the order it applies effects (under its own lock). A zero Seq is assigned
// the next number for that shard.
func (r *Recorder) RecordShard(ev ShardEvent) {
	ev.Players = slices.Clone(ev.Players)
	r.mu.Lock()
	defer r.mu.Unlock()
	ev.At = r.now()
	if ev.Seq == 0 {
		ev.Seq = r.lastSeq[ev.Shard] + 1
	}
	r.lastSeq[ev.Shard] = max(r.lastSeq[ev.Shard], ev.Seq)
	r.h.ShardEvents = append(r.h.ShardEvents, ev)
}

// RecordLease records a lease change a node's FSM applied and stamps its At. A node
// must record its events in apply order, and record a LeaseRestored marker whenever
// it restores or installs a snapshot.
func (r *Recorder) RecordLease(ev LeaseEvent) {
	ev.Players = slices.Clone(ev.Players)
	r.mu.Lock()
	defer r.mu.Unlock()
	ev.At = r.now()
	r.h.LeaseEvents = append(r.h.LeaseEvents, ev)
}

// SetFinal records the final state of every node and shard. settled says the state
// was taken after faults healed and the settle time passed, which enables the
// liveness checks (I5, and the settle-time parts of I1 and I3).
func (r *Recorder) SetFinal(f Final, settled bool) {
	f = f.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h.Final = f
	r.h.Settled = settled
}

// History returns a deep copy of everything recorded so far.
func (r *Recorder) History() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h.Clone()
}
