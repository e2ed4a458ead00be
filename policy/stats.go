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
		Reloads:         s.reloads.Load(),
		ReloadFailures:  s.reloadFailures.Load(),
		LastReloadError: lastErr,
	}
}

type stats struct {
	evaluations, allowed, denied  atomic.Uint64
	evalErrors, timeouts, invalid atomic.Uint64
	reloads, reloadFailures       atomic.Uint64
	mu                            sync.Mutex
	byCode                        map[string]uint64
	lastReloadError               string
}

func (s *stats) record(v *smv1.PolicyVerdict, err error) {
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
