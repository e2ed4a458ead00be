package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// failoverResult is one --failover measurement: a fresh dev stack under open-loop load,
// its leader failed Events times.
type failoverResult struct {
	Mode          string  `json:"mode"` // kill, stop or partition
	Policy        bool    `json:"policy"`
	OfferedPerSec float64 `json:"offered_per_s"`
	Seconds       float64 `json:"seconds"`
	// Recovered counts the failures after which a match committed through a new leader
	// within --failover-timeout.
	Recovered int `json:"recovered"`
	// The distributions over the failures of the times in failoverEvent (milliseconds).
	Elected     failoverStat `json:"elected_ms"`
	Takeover    failoverStat `json:"takeover_ms"`
	Serving     failoverStat `json:"serving_ms"`
	FirstCommit failoverStat `json:"first_commit_ms"`
	CatchUp     failoverStat `json:"catch_up_ms"`
	// Proposals counts every proposal offered during the run; Unknown and Unanswered
	// are the ones whose proposer never learnt the outcome (the target: 0 and 0).
	Proposals openLoopStats `json:"proposals"`
	// Latency of the committed proposals from the time each was due, whole run.
	P50Us  float64         `json:"p50_us"`
	P99Us  float64         `json:"p99_us"`
	P999Us float64         `json:"p999_us"`
	MaxUs  float64         `json:"max_us"`
	Events []failoverEvent `json:"events"`
}

// failoverEvent is one failure. Times are milliseconds from the moment the leader
// failed; -1 where the thing was not seen within --failover-timeout.
type failoverEvent struct {
	Failed    string `json:"failed"`     // the leader that was failed
	NewLeader string `json:"new_leader"` // the first other node Raft elected
	// ElectedMs: Raft elected another node. TakeoverMs: that node finished taking over
	// (barrier, takeover marker, recovery of unfinished transactions): it takes
	// proposals. ServingMs: its API server has bound the intake consumer.
	ElectedMs  float64 `json:"elected_ms"`
	TakeoverMs float64 `json:"takeover_ms"`
	ServingMs  float64 `json:"serving_ms"`
	// StepDownMs (partition only): the isolated leader stopped leading.
	StepDownMs float64 `json:"step_down_ms,omitempty"`
	// FirstCommitMs: the first proposal answered COMMITTED whose decision a new leader
	// logged (decided after the failure), as its proposer saw it.
	FirstCommitMs float64 `json:"first_commit_ms"`
	// CatchUpMs: from the restart (kill, stop) or the heal (partition) until the failed
	// node had applied the leader's log as it was then.
	CatchUpMs float64 `json:"catch_up_ms"`
}

// failoverStat summarises one time over the failures that have it.
type failoverStat struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Max    float64 `json:"max"`
}

// failoverWatch spots the first commit decided by a new leader. Decisions carry the
// wall time at which the leader logged them (DecidedUnixMs); once the failed leader's
// Raft transport is cut it can commit nothing, so a decision logged after that moment
// was logged, and committed, by another node.
type failoverWatch struct {
	mu    sync.Mutex
	after int64 // decisions logged in a later millisecond count
	first time.Time
	hit   chan struct{} // closed at the first; nil while not armed
}

// arm starts watching for decisions logged after t and returns the channel closed on
// the first.
func (w *failoverWatch) arm(t time.Time) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after, w.first, w.hit = t.UnixMilli(), time.Time{}, make(chan struct{})
	return w.hit
}

// observe is told of every commit, answered at.
func (w *failoverWatch) observe(d *smv1.Decision, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hit != nil && w.first.IsZero() && d.GetDecidedUnixMs() > w.after {
		w.first = at
		close(w.hit)
	}
}

func (w *failoverWatch) firstAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

// benchFailover fails the leader o.failover times in mode on a fresh stack under
// o.failoverRate of open-loop load, then drains the load.
func benchFailover(ctx context.Context, o benchOptions, mode string, progress io.Writer) (failoverResult, error) {
	so := o
	so.policy = o.policyMode != policyOff
	res := failoverResult{Mode: mode, Policy: so.policy, OfferedPerSec: o.failoverRate}
	st, err := startBenchStack(ctx, so, false)
	if err != nil {
		return res, err
	}
	defer st.close()
	w := &failoverWatch{}
	op := func(ctx context.Context) error {
		d, err := st.propose(ctx)
		if err == nil && d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			w.observe(d, time.Now())
		}
		return decisionErr(d, err)
	}
	l := newOpenLoop(o, o.failoverRate, 0)
	run := l.start(ctx, op)
	for k := 0; k < o.failover && ctx.Err() == nil; k++ {
		ev, err := st.failOnce(ctx, run, w, mode, o.failoverTimeout)
		if err != nil {
			run.stop()
			return res, fmt.Errorf("failover %s #%d: %w", mode, k+1, err)
		}
		fmt.Fprintf(progress, "coordinator bench: failover %-9s #%-3d %s failed: elected %s, took over %s, serving %s, first commit %s; caught up in %s\n",
			mode, k+1, ev.Failed, fmtMs(ev.ElectedMs), fmtMs(ev.TakeoverMs), fmtMs(ev.ServingMs), fmtMs(ev.FirstCommitMs), fmtMs(ev.CatchUpMs))
		res.Events = append(res.Events, ev)
	}
	out := run.stop()
	row := openLoopRow("", l, o.arrivals, out)
	res.Proposals = *row.OpenLoop
	res.Seconds, res.P50Us, res.P99Us, res.P999Us, res.MaxUs = row.Seconds, row.P50Us, row.P99Us, row.P999Us, row.MaxUs
	pick := func(f func(failoverEvent) float64) failoverStat {
		var xs []float64
		for _, e := range res.Events {
			if v := f(e); v >= 0 {
				xs = append(xs, v)
			}
		}
		return newFailoverStat(xs)
	}
	res.Elected = pick(func(e failoverEvent) float64 { return e.ElectedMs })
	res.Takeover = pick(func(e failoverEvent) float64 { return e.TakeoverMs })
	res.Serving = pick(func(e failoverEvent) float64 { return e.ServingMs })
	res.FirstCommit = pick(func(e failoverEvent) float64 { return e.FirstCommitMs })
	res.CatchUp = pick(func(e failoverEvent) float64 { return e.CatchUpMs })
	for _, e := range res.Events {
		if e.FirstCommitMs >= 0 {
			res.Recovered++
		}
	}
	return res, ctx.Err()
}

func newFailoverStat(xs []float64) failoverStat {
	if len(xs) == 0 {
		return failoverStat{Median: -1, P90: -1, Max: -1}
	}
	slices.Sort(xs)
	q := func(f float64) float64 { return xs[int(f*float64(len(xs)-1)+0.5)] }
	return failoverStat{Median: q(0.5), P90: q(0.9), Max: xs[len(xs)-1]}
}

// failOnce waits for steady load, fails the leader, times the recovery, then restarts
// (or heals) the failed node and waits until it has caught up.
func (b *benchStack) failOnce(ctx context.Context, run *openRun, w *failoverWatch, mode string, timeout time.Duration) (failoverEvent, error) {
	ev := failoverEvent{ElectedMs: -1, TakeoverMs: -1, ServingMs: -1, FirstCommitMs: -1, CatchUpMs: -1}
	if err := b.awaitSteady(ctx, run, timeout); err != nil {
		return ev, err
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	i, _, err := b.lc.Leader(lctx)
	cancel()
	if err != nil {
		return ev, err
	}
	ev.Failed = b.lc.NodeID(i)
	if mode == failoverPartition {
		ev.StepDownMs = -1
	}

	// The failure. Raft is cut first, and everything before the cut is "before": once
	// it is cut the failed leader can commit nothing, so any decision logged after it
	// is a new leader's. kill also drops the node's NATS connection at that instant,
	// before the node stops, as a crash would: nothing it would say on the way down
	// (proposals handed back, "outcome unknown" answers) reaches anyone. stop lets the
	// node shut down as devStack.kill does, its API server handing its proposals back.
	t0 := time.Now()
	if mode == failoverKill {
		b.dropNATS(i)
	}
	b.lc.Partition(i)
	hit := w.arm(time.Now())
	stopped := make(chan struct{})
	if mode == failoverPartition {
		close(stopped)
	} else {
		go func() {
			defer close(stopped)
			b.kill(i)
		}()
	}
	since := func() float64 { return benchRound(float64(time.Since(t0)) / 1e6) }

	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			<-stopped
			return ev, ctx.Err()
		case <-deadline.C:
			done = true
		case <-hit:
			if ev.FirstCommitMs < 0 {
				ev.FirstCommitMs = benchRound(float64(w.firstAt().Sub(t0)) / 1e6)
			}
		case <-tick.C:
		}
		b.observeLeaders(i, &ev, since)
		if ev.FirstCommitMs >= 0 && ev.ElectedMs >= 0 && ev.TakeoverMs >= 0 && ev.ServingMs >= 0 &&
			(mode != failoverPartition || ev.StepDownMs >= 0) {
			done = true
		}
	}
	<-stopped

	// Bring the node back and wait until it has the leader's log as it is now.
	if mode == failoverPartition {
		b.lc.Heal()
	} else if err := b.restart(i); err != nil {
		return ev, fmt.Errorf("restart %s: %w", ev.Failed, err)
	}
	tr := time.Now()
	lctx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	_, ln, err := b.lc.Leader(lctx)
	if err != nil {
		return ev, err
	}
	target := ln.Raft().CommitIndex()
	for {
		if n := b.lc.Node(i); n != nil && n.Raft().AppliedIndex() >= target {
			ev.CatchUpMs = benchRound(float64(time.Since(tr)) / 1e6)
			return ev, nil
		}
		select {
		case <-lctx.Done():
			return ev, fmt.Errorf("%s did not catch up with the leader's index %d: %w", ev.Failed, target, lctx.Err())
		case <-tick.C:
		}
	}
}

// observeLeaders records, the first time each is seen, that a node other than failed
// was elected, took over and serves, and (partition) that failed stepped down.
func (b *benchStack) observeLeaders(failed int, ev *failoverEvent, since func() float64) {
	for j := 0; j < b.lc.Size(); j++ {
		n := b.lc.Node(j)
		if n == nil {
			continue
		}
		if j == failed {
			if ev.StepDownMs < 0 && !n.IsLeader() && n.Raft().State() != raft.Leader {
				ev.StepDownMs = since()
			}
			continue
		}
		if ev.ElectedMs < 0 && n.Raft().State() == raft.Leader {
			ev.ElectedMs, ev.NewLeader = since(), n.ID()
		}
		if ev.TakeoverMs < 0 && n.IsLeader() {
			ev.TakeoverMs = since()
		}
		if ev.ServingMs < 0 && b.nats != nil {
			if api := b.nats.slotAPI(j); api != nil && api.Serving() {
				ev.ServingMs = since()
			}
		}
	}
}

// Steady load, before a failure: for steadyFor on end, every node up, a leader
// serving, proposals committing and none outstanding for longer than steadyAge. A
// failure right after the previous recovery would land on the backlog it left (proposals
// queued during the outage, still preparing) and measure the two together.
const (
	steadyFor = 500 * time.Millisecond
	steadyAge = 250 * time.Millisecond
)

// awaitSteady waits until the load is steady. After timeout it settles for every node
// up, a leader serving and a commit (proposals outstanding longer are in the final
// counts); after twice timeout it fails.
func (b *benchStack) awaitSteady(ctx context.Context, run *openRun, timeout time.Duration) error {
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var (
		since time.Time // conditions held since, zero if they do not hold
		base  uint64    // commits at since
	)
	for {
		up := b.nats == nil || b.nats.serving(b.lc)
		for j := 0; j < b.lc.Size(); j++ {
			up = up && b.lc.Node(j) != nil
		}
		late := time.Since(start) > timeout
		switch {
		case !up || (!late && run.oldestOutstanding() > steadyAge):
			since = time.Time{}
		case since.IsZero():
			since, base = time.Now(), run.commits()
		case run.commits() > base && (late || time.Since(since) >= steadyFor):
			return nil
		}
		if time.Since(start) > 2*timeout {
			if since.IsZero() {
				return fmt.Errorf("not every node up with a leader serving within %s", 2*timeout)
			}
			return fmt.Errorf("no commit within %s", 2*timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// dropNATS closes node i's NATS connection, as the death of its process would.
func (b *benchStack) dropNATS(i int) {
	if b.nats == nil {
		return
	}
	sl := b.nats.slots[i]
	sl.mu.Lock()
	nc := sl.nc
	sl.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// fmtMs prints milliseconds for people; "-" for not seen.
func fmtMs(ms float64) string {
	switch {
	case ms < 0:
		return "-"
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
}

// writeFailover prints the failover measurements.
func writeFailover(w io.Writer, rs []failoverResult) {
	for _, r := range rs {
		fmt.Fprintf(w, "\nfailover: %s the leader, %d times, under %g matches/s offered, policy %v (%d recovered):\n",
			failoverVerb(r.Mode), len(r.Events), r.OfferedPerSec, onOff(r.Policy), r.Recovered)
		fmt.Fprintf(w, "  %-46s %9s %9s %9s\n", "from the failure to", "median", "p90", "max")
		line := func(name string, s failoverStat) {
			fmt.Fprintf(w, "  %-46s %9s %9s %9s\n", name, fmtMs(s.Median), fmtMs(s.P90), fmtMs(s.Max))
		}
		line("a Raft leader elsewhere", r.Elected)
		line("it took over (barrier, recovery)", r.Takeover)
		line("its intake consumer bound", r.Serving)
		line("the first commit through it (proposer's view)", r.FirstCommit)
		line("restart/heal to the failed node caught up", r.CatchUp)
		p := r.Proposals
		fmt.Fprintf(w, "  proposals: %d offered, %d committed, %d aborted%s, %d failed, %d dropped; %d unknown outcome, %d never answered\n",
			p.Offered, p.Committed, p.Aborted, fmtReasons(p.AbortedBy), p.Failed, p.Dropped, p.Unknown, p.Unanswered)
		fmt.Fprintf(w, "  latency from due (committed): p50 %s, p99 %s, p99.9 %s, max %s\n",
			fmtUs(r.P50Us), fmtUs(r.P99Us), fmtUs(r.P999Us), fmtUs(r.MaxUs))
	}
}

// fmtReasons prints counts by reason as " (A 3, B 1)", "" if there are none.
func fmtReasons(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(out, ", ") + ")"
}

func failoverVerb(mode string) string {
	switch mode {
	case failoverKill:
		return "kill (crash: NATS connection and Raft cut at once)"
	case failoverStop:
		return "stop (abrupt shutdown, API server hands proposals back)"
	}
	return "partition (Raft cut, NATS kept)"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
