package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// mdViolationLimit caps the violations listed per invariant in report.md (report.json
// has them all).
const mdViolationLimit = 50

// Markdown renders the run for people: the verdict first, then the faults, the
// violations with their messages, the liveness checks and the statistics.
func Markdown(r *Run, s Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos run: %s (seed %d)\n\n", s.Scenario, s.Seed)
	if s.Pass {
		fmt.Fprintf(&b, "**Verdict: %s**: %s; %d/%d liveness checks passed.\n\n", s.Verdict, violationPhrase(s),
			len(s.Liveness)-s.LivenessFailed, len(s.Liveness))
	} else {
		fmt.Fprintf(&b, "**Verdict: %s**\n\n", s.Verdict)
		for _, why := range s.Reasons {
			fmt.Fprintf(&b, "- %s\n", md(why))
		}
		b.WriteString("\n")
	}
	if !s.Started.IsZero() {
		fmt.Fprintf(&b, "Started %s; the run took %s. ", s.Started.UTC().Format(time.RFC3339), s.Duration.Round(time.Second))
	}
	fmt.Fprintf(&b, "%d proposals: %d committed, %d aborted, %d unknown, %d unanswered; p50 %s, p99 %s.\n\n",
		s.Proposals, s.Committed, s.Aborted, s.Unknown, s.NotReturned, ms(s.P50), ms(s.P99))
	b.WriteString("![timeline](timeline.svg)\n\n")

	b.WriteString("## Faults\n\n")
	if len(s.Faults) == 0 {
		b.WriteString("None.\n\n")
	} else {
		b.WriteString("| # | kind | targets | start | end | length |\n|---|---|---|---|---|---|\n")
		for i, w := range s.Faults {
			end, length := "never healed", "-"
			if w.End > 0 {
				end, length = secs(w.End), (w.End - w.Start).Round(time.Millisecond).String()
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, md(w.Kind), md(w.Targets), secs(w.Start), end, length)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Invariants\n\n")
	if len(s.Expected) > 0 {
		fmt.Fprintf(&b, "Expected violations: %s.\n\n", md(strings.Join(s.Expected, ", ")))
	}
	b.WriteString("| invariant | | violations |\n|---|---|---|\n")
	for _, id := range history.Invariants {
		res := "ok"
		if n := s.ViolationsByInvariant[id]; n > 0 {
			res = fmt.Sprintf("**%d**", n)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", id, history.InvariantName(id), res)
	}
	b.WriteString("\n")
	if len(s.Violations) > 0 {
		b.WriteString("### Violations\n")
		for _, id := range slices.Sorted(maps.Keys(s.ViolationsByInvariant)) {
			fmt.Fprintf(&b, "\n#### %s %s (%d)\n\n", id, history.InvariantName(id), s.ViolationsByInvariant[id])
			n := 0
			for _, v := range s.Violations {
				if v.Invariant != id {
					continue
				}
				if n++; n <= mdViolationLimit {
					fmt.Fprintf(&b, "- `%s`\n", strings.ReplaceAll(v.String(), "`", "'"))
				}
			}
			if n > mdViolationLimit {
				fmt.Fprintf(&b, "- … and %d more (see report.json)\n", n-mdViolationLimit)
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("## Liveness\n\n")
	if len(s.Liveness) == 0 {
		b.WriteString("No liveness checks.\n\n")
	} else {
		b.WriteString("| check | result | measured | detail |\n|---|---|---|---|\n")
		for _, l := range s.Liveness {
			res, measured := "pass", "-"
			if !l.Pass {
				res = "**FAIL**"
			}
			if l.Measured > 0 {
				measured = ms(l.Measured)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", md(l.Name), res, measured, md(l.Detail))
		}
		b.WriteString("\n")
	}

	b.WriteString("## Statistics\n\n| | |\n|---|---|\n")
	for _, row := range [][2]string{
		{"proposals (retries included)", fmt.Sprint(s.Proposals)},
		{"committed", fmt.Sprint(s.Committed)},
		{"aborted", fmt.Sprint(s.Aborted)},
		{"unknown outcome", fmt.Sprint(s.Unknown)},
		{"never answered", fmt.Sprint(s.NotReturned)},
		{"renews (failed)", fmt.Sprintf("%d (%d)", s.Renews, s.RenewsFailed)},
		{"releases (failed)", fmt.Sprintf("%d (%d)", s.Releases, s.ReleasesFailed)},
		{"p50 / p99", ms(s.P50) + " / " + ms(s.P99)},
		{fmt.Sprintf("p99 outside faults (%d calls)", s.FaultFreeCount), ms(s.P99FaultFree)},
		{fmt.Sprintf("p99 overlapping a fault (%d calls)", s.DuringFaultCount), ms(s.P99DuringFault)},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], row[1])
	}
	for _, k := range slices.Sorted(maps.Keys(s.AbortsByReason)) {
		fmt.Fprintf(&b, "| aborted %s | %d |\n", md(k), s.AbortsByReason[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.Extra)) {
		fmt.Fprintf(&b, "| %s | %s |\n", md(k), md(fmt.Sprint(s.Extra[k])))
	}
	if st := r.Check.Stats; len(st) > 0 {
		b.WriteString("\n### History\n\n| recorded | count |\n|---|---|\n")
		for _, k := range slices.Sorted(maps.Keys(st)) {
			fmt.Fprintf(&b, "| %s | %d |\n", md(k), st[k])
		}
	}
	if len(s.Notes) > 0 {
		b.WriteString("\n### Checker notes\n\n")
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "- %s\n", md(n))
		}
	}
	return b.String()
}

func violationPhrase(s Summary) string {
	if len(s.Expected) == 0 {
		return "no invariant violated"
	}
	var parts []string
	for _, id := range history.Invariants {
		if n := s.ViolationsByInvariant[id]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", id, n))
		}
	}
	return fmt.Sprintf("the checkers reported the expected violations (%s: %s)",
		strings.Join(s.Expected, ", "), strings.Join(parts, " "))
}

// secs renders a reference-clock time as seconds, e.g. "21.0s".
func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// md escapes the characters that would break a Markdown table cell.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}
