package main

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardmatch/shardmatch/client"
)

// errAborted marks an answered proposal that did not commit (a definite answer, not a
// lost one).
var errAborted = errors.New("bench: proposal aborted")

// openLoop offers an operation at a fixed rate whatever the backlog: arrival i is due at
// start + i/rate (or after exponential gaps with --arrivals poisson), and is started in
// its own goroutine when due, however many earlier ones are still waiting. Its latency
// is counted from the time it was due, not from when it was started, so a stall of the
// system (or of this scheduler) shows in the latencies of everything that arrived
// during it: no coordinated omission, unlike a closed loop, whose callers wait out a
// stall and so never send the requests that would have measured it.
type openLoop struct {
	rate     float64       // arrivals per second, > 0
	duration time.Duration // offering stops after this long (0: only at stop)
	poisson  bool
	seed     uint64
	// maxOutstanding bounds the operations awaiting an answer; an arrival beyond it is
	// dropped (counted, not started).
	maxOutstanding int
	// drain bounds the wait for outstanding answers once offering has stopped.
	drain time.Duration
	// beforeArrival, if set, is called by the scheduler before it waits for arrival i
	// (tests use it to stall the scheduler).
	beforeArrival func(i uint64)
}

// openResult is what an open-loop run saw. Every offered arrival ends in exactly one of
// Committed, Aborted, Unknown, Failed, Dropped and Unanswered.
type openResult struct {
	Offered   uint64 // arrivals due while offering (dropped ones included)
	Committed uint64
	Aborted   uint64 // answered, not committed (errAborted)
	// AbortedBy counts the aborted by reason (an abortedError's; "" for another error).
	AbortedBy  map[string]uint64
	Unknown    uint64 // answered "outcome unknown" before the drain deadline
	Failed     uint64 // any other error
	Dropped    uint64 // not started: maxOutstanding were outstanding
	Unanswered uint64 // still outstanding at the drain deadline
	// Lat are the committed operations' latencies from the time each was due.
	Lat             []time.Duration
	PeakOutstanding int
	// FirstError is the first error an operation returned ("" if none).
	FirstError string
	// Took runs from the start to the end of offering or to the last commit, whichever
	// is later: achieved throughput is Committed/Took.
	Took time.Duration
}

// errorsTotal is every arrival that was answered or dropped without committing.
func (r openResult) errorsTotal() uint64 { return r.Aborted + r.Unknown + r.Failed + r.Dropped }

// run offers op for l.duration, then waits (at most l.drain) for the answers.
func (l *openLoop) run(ctx context.Context, op func(context.Context) error) openResult {
	r := l.start(ctx, op)
	select {
	case <-r.schedDone:
	case <-ctx.Done():
	}
	return r.stop()
}

// openRun is a running open loop.
type openRun struct {
	l         *openLoop
	op        func(context.Context) error
	ctx       context.Context // the caller's: its end stops offering and draining
	opCtx     context.Context // the operations': cancelled at the drain deadline
	cancelOps context.CancelFunc
	t0        time.Time
	stopCh    chan struct{}
	stopOnce  sync.Once
	schedDone chan struct{}
	ops       sync.WaitGroup
	committed atomic.Uint64

	mu       sync.Mutex
	closed   bool                 // past the drain deadline: answers no longer count
	inflight map[uint64]time.Time // due times of the outstanding operations
	last     time.Time            // the last commit
	res      openResult
}

// start begins offering op and returns at once.
func (l *openLoop) start(ctx context.Context, op func(context.Context) error) *openRun {
	r := &openRun{l: l, op: op, ctx: ctx, t0: time.Now(), stopCh: make(chan struct{}), schedDone: make(chan struct{}),
		inflight: make(map[uint64]time.Time)}
	r.opCtx, r.cancelOps = context.WithCancel(context.WithoutCancel(ctx))
	go r.schedule()
	return r
}

// schedule starts each arrival when it is due until offering stops.
func (r *openRun) schedule() {
	defer close(r.schedDone)
	l := r.l
	rng := rand.New(rand.NewPCG(l.seed, l.seed^0x9e3779b97f4a7c15))
	// Every arrival due within the duration is offered, however late the scheduler
	// wakes for it: the bound is on due times, not on the clock.
	var offset float64 // seconds from t0 to the next arrival
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := uint64(0); ; i++ {
		due := r.t0.Add(time.Duration(offset * float64(time.Second)))
		if l.duration > 0 && due.Sub(r.t0) >= l.duration {
			return
		}
		if l.beforeArrival != nil {
			l.beforeArrival(i)
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-r.stopCh:
				return
			case <-r.ctx.Done():
				return
			}
		} else {
			select { // late (the scheduler stalled): start it now, still timed from due
			case <-r.stopCh:
				return
			case <-r.ctx.Done():
				return
			default:
			}
		}
		if l.poisson {
			offset += rng.ExpFloat64() / l.rate
		} else {
			offset = float64(i+1) / l.rate
		}
		r.mu.Lock()
		r.res.Offered++
		if len(r.inflight) >= l.maxOutstanding {
			r.res.Dropped++
			r.mu.Unlock()
			continue
		}
		r.inflight[i] = due
		r.res.PeakOutstanding = max(r.res.PeakOutstanding, len(r.inflight))
		r.mu.Unlock()
		r.ops.Go(func() { r.do(i, due) })
	}
}

// do runs arrival i, due at due, and accounts for its answer.
func (r *openRun) do(i uint64, due time.Time) {
	err := r.op(r.opCtx)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return // counted as unanswered at the deadline
	}
	delete(r.inflight, i)
	if err != nil && r.res.FirstError == "" {
		r.res.FirstError = err.Error()
	}
	switch {
	case err == nil:
		r.res.Committed++
		r.committed.Add(1)
		r.res.Lat = append(r.res.Lat, now.Sub(due))
		r.last = now
	case errors.Is(err, errAborted):
		r.res.Aborted++
		var a abortedError
		errors.As(err, &a)
		if r.res.AbortedBy == nil {
			r.res.AbortedBy = map[string]uint64{}
		}
		r.res.AbortedBy[strings.TrimPrefix(a.reason.String(), "REASON_")]++
	case errors.Is(err, client.ErrOutcomeUnknown):
		r.res.Unknown++
	default:
		r.res.Failed++
	}
}

// commits is how many operations have committed so far.
func (r *openRun) commits() uint64 { return r.committed.Load() }

// oldestOutstanding is how long the oldest outstanding operation has been due (0 if
// none is outstanding).
func (r *openRun) oldestOutstanding() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var oldest time.Time
	for _, due := range r.inflight {
		if oldest.IsZero() || due.Before(oldest) {
			oldest = due
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// stop ends offering, waits at most l.drain (or until the caller's context ends) for
// the outstanding answers, counts those still missing as unanswered, cancels them and
// returns the result.
func (r *openRun) stop() openResult {
	r.stopOnce.Do(func() { close(r.stopCh) })
	<-r.schedDone
	offered := time.Since(r.t0)
	answered := make(chan struct{})
	go func() {
		r.ops.Wait()
		close(answered)
	}()
	deadline := time.NewTimer(r.l.drain)
	defer deadline.Stop()
	select {
	case <-answered:
	case <-deadline.C:
	case <-r.ctx.Done():
	}
	r.mu.Lock()
	r.closed = true
	res := r.res
	res.Unanswered = uint64(len(r.inflight))
	res.Lat = slices.Clone(r.res.Lat)
	res.AbortedBy = maps.Clone(r.res.AbortedBy)
	res.Took = max(offered, r.last.Sub(r.t0))
	r.mu.Unlock()
	r.cancelOps()
	select { // the operations honour their context; do not hang on one that does not
	case <-answered:
	case <-time.After(10 * time.Second):
	}
	return res
}

// openLoopRow turns an open-loop result into a table row.
func openLoopRow(name string, l *openLoop, arrivals string, res openResult) benchRow {
	row := newRow(name, 0, res.Lat, res.errorsTotal(), res.Took)
	row.OpenLoop = &openLoopStats{Arrivals: arrivals, OfferedPerSec: l.rate, Offered: res.Offered, Committed: res.Committed,
		Aborted: res.Aborted, AbortedBy: res.AbortedBy, Unknown: res.Unknown, Failed: res.Failed, Dropped: res.Dropped, Unanswered: res.Unanswered,
		PeakOutstanding: res.PeakOutstanding, FirstError: res.FirstError}
	return row
}

// openLoopStats are the counts of an open-loop row; the row's errors are Aborted +
// Unknown + Failed + Dropped, its ops the commits, its ops/s the commits per second
// from the start to the last commit.
type openLoopStats struct {
	Arrivals      string  `json:"arrivals"`
	OfferedPerSec float64 `json:"offered_per_s"`
	Offered       uint64  `json:"offered"`
	Committed     uint64  `json:"committed"`
	Aborted       uint64  `json:"aborted"`
	// AbortedBy counts the aborted by reason (POLICY_DENIED, COORDINATOR_FAILOVER, ...).
	AbortedBy       map[string]uint64 `json:"aborted_by,omitempty"`
	Unknown         uint64            `json:"unknown"`
	Failed          uint64            `json:"failed"`
	Dropped         uint64            `json:"dropped"`
	Unanswered      uint64            `json:"unanswered"`
	PeakOutstanding int               `json:"peak_outstanding"`
	FirstError      string            `json:"first_error,omitempty"`
}

// newOpenLoop is the open loop of the options at rate.
func newOpenLoop(o benchOptions, rate float64, d time.Duration) *openLoop {
	return &openLoop{rate: rate, duration: d, poisson: o.arrivals == arrivalsPoisson, seed: 1,
		maxOutstanding: o.maxOutstanding, drain: o.drain}
}
