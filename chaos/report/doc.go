// Package report turns one chaos run (its scenario name and seed, the fault windows
// the runner applied, the recorded history, the invariant check and the liveness
// checks) into a verdict and a report directory: report.json for tools, report.md
// for people (verdict first), timeline.svg (throughput and p99 latency over time,
// fault windows shaded, violations marked) and history.json for offline re-checking.
//
// The package is pure apart from Write's files: it starts nothing, reads no clock
// (every time comes from the Run, on the history's reference clock) and draws the
// chart by hand, without dependencies.
//
// The verdict (Summarize) is PASS exactly when the violations are as the scenario
// expects (none at all, or every required expectation met and nothing unexpected;
// see scenario.Expectation) and every liveness check passed.
package report
