package policy

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Stats are the engine's counters since New, for metrics and status pages.
type Stats struct {
	// Revision is the bundle version in use, LoadedAt when it was loaded (wall
	// clock, for display).
	Revision string
	LoadedAt time.Time

	Evaluations uint64 // Evaluate calls
	Allowed     uint64 // verdicts that allowed
	Denied      uint64 // verdicts that denied, for any reason
	// EvalErrors counts POLICY_ERROR verdicts (errors, timeouts, cancellations,
	// malformed answers); Timeouts is the part of them that hit a deadline.
	EvalErrors uint64
	Timeouts   uint64
	// InvalidInputs counts proposals refused as malformed before evaluation.
	InvalidInputs uint64
	// DenialsByCode counts denied proposals per denial code: a proposal with
	// three LATENCY denials counts once under LATENCY.
	DenialsByCode map[string]uint64

	// Latency is the distribution of Evaluate's running time, measured on the
	// machine's monotonic clock (it is CPU time the leader spends before Begin).
	Latency Histogram

	Reloads        uint64 // reloads that installed a new version or found it unchanged
	ReloadFailures uint64 // reloads that kept the old version
	// LastReloadError is the error of the last failed reload, "" once a reload
	// succeeds again.
	LastReloadError string
}

// Stats returns a copy of the engine's counters.
func (e *Engine) Stats() Stats {
	c := e.cur.Load()
	s := &e.stats
	s.mu.Lock()
	byCode := maps.Clone(s.byCode)
	lastErr := s.lastReloadError
	s.mu.Unlock()
	if byCode == nil {
		byCode = map[string]uint64{}
	}
	return Stats{
		Revision:        c.revision,
		LoadedAt:        c.loadedAt,
		Evaluations:     s.evaluations.Load(),
		Allowed:         s.allowed.Load(),
		Denied:          s.denied.Load(),
		EvalErrors:      s.evalErrors.Load(),
		Timeouts:        s.timeouts.Load(),
		InvalidInputs:   s.invalid.Load(),
		DenialsByCode:   byCode,
		Latency:         s.latency.snapshot(),
		Reloads:         s.reloads.Load(),
		ReloadFailures:  s.reloadFailures.Load(),
		LastReloadError: lastErr,
	}
}

type stats struct {
	latency                       latency
	evaluations, allowed, denied  atomic.Uint64
	evalErrors, timeouts, invalid atomic.Uint64
	reloads, reloadFailures       atomic.Uint64
	mu                            sync.Mutex
	byCode                        map[string]uint64
	lastReloadError               string
}

func (s *stats) record(v *smv1.PolicyVerdict, err error, took time.Duration) {
	s.latency.observe(took)
	s.evaluations.Add(1)
	if v.GetAllow() {
		s.allowed.Add(1)
		return
	}
	s.denied.Add(1)
	switch {
	case errors.Is(err, ErrInvalidInput):
		s.invalid.Add(1)
	case errors.Is(err, ErrEvaluation):
		s.evalErrors.Add(1)
		if errors.Is(err, context.DeadlineExceeded) {
			s.timeouts.Add(1)
		}
	}
	s.mu.Lock()
	if s.byCode == nil {
		s.byCode = make(map[string]uint64)
	}
	for i, d := range v.GetDenials() {
		if i == 0 || d.GetCode() != v.GetDenials()[i-1].GetCode() { // denials are sorted by code
			s.byCode[d.GetCode()]++
		}
	}
	s.mu.Unlock()
}

func (s *stats) reloadFailed(err error) {
	s.reloadFailures.Add(1)
	s.mu.Lock()
	s.lastReloadError = err.Error()
	s.mu.Unlock()
}

func (s *stats) reloadOK() {
	s.reloads.Add(1)
	s.mu.Lock()
	s.lastReloadError = ""
	s.mu.Unlock()
}

// LatencyBounds are the upper bounds of the Stats.Latency buckets, chosen around the
// engine's target (a p99 under 100µs for a 10-player match).
var LatencyBounds = []time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 75 * time.Microsecond,
	100 * time.Microsecond, 150 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 5 * time.Millisecond, 25 * time.Millisecond, 250 * time.Millisecond,
}

// Histogram is a latency distribution over LatencyBounds.
type Histogram struct {
	// Counts[i] counts the observations in (LatencyBounds[i-1], LatencyBounds[i]];
	// the last element, one past LatencyBounds, those above the last bound.
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Quantile returns the upper bound of the bucket holding the q-quantile (0 < q <= 1):
// an upper estimate. It is 0 without observations and the largest bound doubled when
// the quantile lies beyond every bound.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.Count) + 0.999999)
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= rank {
			if i < len(LatencyBounds) {
				return LatencyBounds[i]
			}
			break
		}
	}
	return 2 * LatencyBounds[len(LatencyBounds)-1]
}

// latency is the lock-free histogram behind Stats.Latency.
type latency struct {
	counts [13]atomic.Uint64 // len(LatencyBounds)+1
	sum    atomic.Int64
}

func (l *latency) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

func (l *latency) snapshot() Histogram {
	h := Histogram{Counts: make([]uint64, len(l.counts)), Sum: time.Duration(l.sum.Load())}
	for i := range l.counts {
		h.Counts[i] = l.counts[i].Load()
		h.Count += h.Counts[i]
	}
	return h
}
