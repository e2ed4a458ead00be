package report

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// Verdicts.
const (
	VerdictPass = "PASS"
	VerdictFail = "FAIL"
)

// Summary is a run's verdict and headline numbers.
type Summary struct {
	Scenario string        `json:"scenario"`
	Seed     int64         `json:"seed"`
	Secure   bool          `json:"secure,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`

	// Pass is the verdict; Reasons say why it failed (empty when it passed).
	Pass    bool     `json:"pass"`
	Verdict string   `json:"verdict"`
	Reasons []string `json:"reasons,omitempty"`

	// Proposals counts every propose call, retries included; Committed, Aborted and
	// Unknown are their answers, NotReturned those still waiting at the end.
	Proposals      int            `json:"proposals"`
	Committed      int            `json:"committed"`
	Aborted        int            `json:"aborted"`
	Unknown        int            `json:"unknown"`
	NotReturned    int            `json:"not_returned"`
	AbortsByReason map[string]int `json:"aborts_by_reason,omitempty"`
	Renews         int            `json:"renews"`
	RenewsFailed   int            `json:"renews_failed"`
	Releases       int            `json:"releases"`
	ReleasesFailed int            `json:"releases_failed"`

	// Latencies of returned proposes. FaultFree are the proposes whose call overlapped
	// no fault window, DuringFault those that overlapped one.
	P50              time.Duration `json:"p50_ns"`
	P99              time.Duration `json:"p99_ns"`
	P99FaultFree     time.Duration `json:"p99_fault_free_ns"`
	P99DuringFault   time.Duration `json:"p99_during_fault_ns"`
	FaultFreeCount   int           `json:"fault_free_count"`
	DuringFaultCount int           `json:"during_fault_count"`

	// Violations are the history check's findings; ViolationsByInvariant counts them.
	Violations            []history.Violation `json:"violations"`
	ViolationsByInvariant map[string]int      `json:"violations_by_invariant,omitempty"`
	// Expected are the scenario's expectations; Missing the required ones no
	// violation met; Unexpected the invariants violated that no expectation names.
	Expected   []string `json:"expected,omitempty"`
	Missing    []string `json:"missing,omitempty"`
	Unexpected []string `json:"unexpected,omitempty"`

	Liveness       []LivenessResult `json:"liveness,omitempty"`
	LivenessFailed int              `json:"liveness_failed"`
	Faults         []FaultWindow    `json:"faults,omitempty"`
	Notes          []string         `json:"notes,omitempty"`
	Extra          map[string]any   `json:"extra,omitempty"`
}

// Summarize computes the verdict and the headline numbers of r.
func Summarize(r *Run) Summary {
	s := Summary{Scenario: r.Scenario, Seed: r.Seed, Secure: r.Secure, Started: r.Started, Duration: r.Duration,
		Violations: slices.Clone(r.Check.Violations), Expected: slices.Clone(r.Expect),
		Liveness: slices.Clone(r.Liveness), Faults: slices.Clone(r.Faults),
		Notes: slices.Clone(r.Check.Notes), Extra: jsonSafe(r.Extra)}
	if s.Violations == nil {
		s.Violations = []history.Violation{}
	}
	if r.History != nil {
		s.countOps(r.History, r.Faults)
	}
	s.verdict()
	return s
}

func (s *Summary) countOps(h *history.History, faults []FaultWindow) {
	horizon := historyHorizon(h)
	var all, free, during []time.Duration
	for _, op := range h.Ops {
		switch op.Kind {
		case history.OpRenew, history.OpRelease:
			n, failed := &s.Renews, &s.RenewsFailed
			if op.Kind == history.OpRelease {
				n, failed = &s.Releases, &s.ReleasesFailed
			}
			*n++
			if op.Returned && op.Result == history.ResultFail {
				*failed++
			}
			continue
		case history.OpPropose:
		default:
			continue
		}
		s.Proposals++
		if !op.Returned {
			s.NotReturned++
			continue
		}
		switch op.Result {
		case history.ResultCommitted:
			s.Committed++
		case history.ResultAborted:
			s.Aborted++
			if s.AbortsByReason == nil {
				s.AbortsByReason = map[string]int{}
			}
			s.AbortsByReason[reasonName(op.Reason)]++
		default:
			s.Unknown++
		}
		d := op.Return - op.Invoke
		all = append(all, d)
		if overlapsFault(op.Invoke, op.Return, faults, horizon) {
			during = append(during, d)
		} else {
			free = append(free, d)
		}
	}
	s.FaultFreeCount, s.DuringFaultCount = len(free), len(during)
	s.P99FaultFree, s.P99DuringFault = quantile(free, 0.99), quantile(during, 0.99)
	s.P50, s.P99 = quantile(all, 0.50), quantile(all, 0.99)
}

// overlapsFault reports whether [from, to] meets any fault window.
func overlapsFault(from, to time.Duration, faults []FaultWindow, horizon time.Duration) bool {
	for _, w := range faults {
		if from <= w.end(horizon) && to >= w.Start {
			return true
		}
	}
	return false
}

// verdict sets Pass, Verdict, Reasons, Missing, Unexpected and the per-invariant
// counts from the violations, the expectations and the liveness results.
func (s *Summary) verdict() {
	s.ViolationsByInvariant = map[string]int{}
	for _, v := range s.Violations {
		s.ViolationsByInvariant[v.Invariant]++
	}
	reported := func(id string) bool { return s.ViolationsByInvariant[id] > 0 }
	named := map[string]bool{}
	for _, entry := range s.Expected {
		e, err := scenario.ParseExpectation(entry)
		if err != nil {
			s.Reasons = append(s.Reasons, fmt.Sprintf("bad expectation: %v", err))
			continue
		}
		for _, id := range e.AnyOf {
			named[id] = true
		}
		if !e.Met(reported) {
			s.Missing = append(s.Missing, e.String())
		}
	}
	for _, id := range history.Invariants {
		if reported(id) && !named[id] {
			s.Unexpected = append(s.Unexpected, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.ViolationsByInvariant)) {
		if !slices.Contains(history.Invariants, id) && !named[id] {
			s.Unexpected = append(s.Unexpected, id) // an id this package does not know
		}
	}
	if len(s.Missing) > 0 {
		s.Reasons = append(s.Reasons, fmt.Sprintf("expected violations not reported: %s (the checkers did not bite)",
			strings.Join(s.Missing, ", ")))
	}
	if len(s.Unexpected) > 0 {
		parts := make([]string, len(s.Unexpected))
		for i, id := range s.Unexpected {
			parts[i] = fmt.Sprintf("%s %s ×%d", id, history.InvariantName(id), s.ViolationsByInvariant[id])
		}
		s.Reasons = append(s.Reasons, "invariants violated: "+strings.Join(parts, ", "))
	}
	for _, l := range s.Liveness {
		if !l.Pass {
			s.LivenessFailed++
			msg := "liveness: " + l.Name
			if l.Detail != "" {
				msg += ": " + l.Detail
			}
			s.Reasons = append(s.Reasons, msg)
		}
	}
	s.Pass = len(s.Reasons) == 0
	s.Verdict = VerdictFail
	if s.Pass {
		s.Verdict = VerdictPass
	}
}

// Line is the summary on one line, for a terminal.
func (s Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s | committed %d aborted %d", s.Verdict, s.Committed, s.Aborted)
	if len(s.AbortsByReason) > 0 {
		b.WriteString(" (")
		for i, k := range slices.Sorted(maps.Keys(s.AbortsByReason)) {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%d", k, s.AbortsByReason[k])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " unknown %d | p50 %s p99 %s", s.Unknown, ms(s.P50), ms(s.P99))
	if s.DuringFaultCount > 0 {
		fmt.Fprintf(&b, " (during faults %s)", ms(s.P99DuringFault))
	}
	b.WriteString(" | violations ")
	if len(s.Violations) == 0 {
		b.WriteString("none")
	} else {
		var parts []string
		for _, id := range history.Invariants {
			if n := s.ViolationsByInvariant[id]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s×%d", id, n))
			}
		}
		b.WriteString(strings.Join(parts, " "))
	}
	if len(s.Expected) > 0 {
		fmt.Fprintf(&b, " (expected %s)", strings.Join(s.Expected, ", "))
	}
	fmt.Fprintf(&b, " | liveness %d/%d", len(s.Liveness)-s.LivenessFailed, len(s.Liveness))
	if !s.Pass {
		b.WriteString(" | ")
		b.WriteString(strings.Join(s.Reasons, "; "))
	}
	if s.Secure {
		b.WriteString(" | secure")
	}
	return b.String()
}

// ms renders a latency to the millisecond (to the microsecond below 1ms).
func ms(d time.Duration) string {
	if d > 0 && d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// jsonSafe copies extra, turning floats JSON cannot carry (NaN, ±Inf) into strings so
// that report.json can always be written.
func jsonSafe(extra map[string]any) map[string]any {
	out := maps.Clone(extra)
	for k, v := range out {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			out[k] = strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return out
}
