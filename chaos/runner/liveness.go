package runner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/report"
)

// resumeChecks measures, for every heal at least within before the workload's end,
// how long after it the first proposal returned COMMITTED. Each must be within
// `within`. Heals too close to the end are reported as skipped, not passed.
func resumeChecks(h *history.History, heals []time.Duration, workloadEnd, within time.Duration) []report.LivenessResult {
	if within <= 0 {
		return nil
	}
	var commits []time.Duration
	for _, op := range h.Ops {
		if op.Kind == history.OpPropose && op.Returned && op.Result == history.ResultCommitted {
			commits = append(commits, op.Return)
		}
	}
	slices.Sort(commits)
	heals = slices.Clone(heals)
	slices.Sort(heals)
	var out []report.LivenessResult
	for _, heal := range slices.Compact(heals) {
		name := fmt.Sprintf("commits resume within %s of the heal at %s", within, heal.Round(100*time.Millisecond))
		if heal+within > workloadEnd {
			continue // the workload stops before the bound: nothing to measure
		}
		i, _ := slices.BinarySearch(commits, heal)
		if i == len(commits) || commits[i] > workloadEnd {
			out = append(out, report.LivenessResult{Name: name, Pass: false, Detail: "no commit after the heal"})
			continue
		}
		took := commits[i] - heal
		out = append(out, report.LivenessResult{Name: name, Pass: took <= within, Measured: took,
			Detail: fmt.Sprintf("first commit %s after the heal", took.Round(time.Millisecond))})
	}
	return out
}

// terminationCheck says whether the run settled (every txn decided and acknowledged
// by every shard, no shard in doubt) within `within` (> 0) of the last heal.
func terminationCheck(settled bool, took, within time.Duration) report.LivenessResult {
	name := fmt.Sprintf("every txn terminates within %s after the last heal", within)
	if !settled {
		return report.LivenessResult{Name: name, Pass: false, Measured: took,
			Detail: fmt.Sprintf("not settled after %s: txns left undecided, unacknowledged or in doubt", took.Round(time.Millisecond))}
	}
	return report.LivenessResult{Name: name, Pass: took <= within, Measured: took,
		Detail: fmt.Sprintf("settled %s after the last heal", took.Round(time.Millisecond))}
}

// contended reports whether an abort reason is the workload's own doing (players
// already leased, a proposal the policy denies) rather than the system's.
func contended(reason string) bool {
	r := strings.TrimPrefix(reason, "REASON_")
	return r == "PLAYER_LEASED" || r == "POLICY_DENIED"
}

// commitRatio is committed / (every proposal except the ones aborted for contention
// or by policy). Unknown outcomes and proposals that never returned count against it.
func commitRatio(h *history.History) (ratio float64, committed, counted int) {
	for _, op := range h.Ops {
		if op.Kind != history.OpPropose {
			continue
		}
		if op.Returned && op.Result == history.ResultAborted && contended(op.Reason) {
			continue
		}
		counted++
		if op.Returned && op.Result == history.ResultCommitted {
			committed++
		}
	}
	if counted == 0 {
		return 0, 0, 0
	}
	return float64(committed) / float64(counted), committed, counted
}

// ratioCheck compares the commit ratio with the scenario's floor.
func ratioCheck(h *history.History, floor float64) (report.LivenessResult, float64) {
	r, c, n := commitRatio(h)
	return report.LivenessResult{Name: fmt.Sprintf("at least %.3f%% of uncontended proposals commit", floor*100),
		Pass: n > 0 && r >= floor, Detail: fmt.Sprintf("%d of %d committed (%.4f%%)", c, n, r*100)}, r
}

// crashCheck reports processes that exited on their own during the run.
func crashCheck(crashed []string) report.LivenessResult {
	r := report.LivenessResult{Name: "no process crashed", Pass: len(crashed) == 0}
	if len(crashed) > 0 {
		r.Detail = "exited on their own: " + strings.Join(crashed, ", ")
	}
	return r
}
