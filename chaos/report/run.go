package report

import (
	"errors"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// ErrNoHistory is returned by Write for a Run without a History.
var ErrNoHistory = errors.New("report: run has no history")

// Run is everything one chaos run produced.
type Run struct {
	Scenario string
	Seed     int64
	// Secure: every process ran secured (NATS JWT auth, signed commands, Raft and
	// admin TLS with tokens).
	Secure   bool
	Started  time.Time     // wall clock, for display only
	Duration time.Duration // the whole run: setup, workload, settle, check
	// Faults are the fault windows as applied, on the history's reference clock.
	Faults []FaultWindow
	// History is what was recorded: client ops, shard events, lease events, final state.
	History *history.History
	// Check is history.Check(History).
	Check history.Report
	// Liveness are the runner's bounds: resume after heal, termination, commit ratio.
	Liveness []LivenessResult
	// Extra holds anything else worth reporting (commit ratio, settle time, ...).
	Extra map[string]any
	// Expect are the scenario's expected violations (scenario.Expect.Violations):
	// empty for a clean run.
	Expect []string
}

// FaultWindow is one fault occurrence as applied. End is 0 if it was never healed
// (the report then treats it as lasting to the end of the history).
type FaultWindow struct {
	Kind    string        `json:"kind"`
	Targets string        `json:"targets"`
	Start   time.Duration `json:"start_ns"`
	End     time.Duration `json:"end_ns"`
}

// end is the window's end, or horizon if it was never healed.
func (w FaultWindow) end(horizon time.Duration) time.Duration {
	if w.End <= 0 || w.End < w.Start {
		return max(horizon, w.Start)
	}
	return w.End
}

// LivenessResult is one liveness check, e.g. "commits resume within 3s of the heal
// at 21.0s": Measured 1.2s.
type LivenessResult struct {
	Name     string        `json:"name"`
	Pass     bool          `json:"pass"`
	Detail   string        `json:"detail,omitempty"`
	Measured time.Duration `json:"measured_ns,omitempty"`
}
