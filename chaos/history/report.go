package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Invariant ids (docs/chaos.md, "The invariants"), plus LOG for replicated-log consistency.
const (
	I1  = "I1" // atomicity
	I2  = "I2" // no double booking
	I3  = "I3" // durable decisions
	I4  = "I4" // fencing
	I5  = "I5" // termination
	I6  = "I6" // exactly-once effect
	I7  = "I7" // no early expiry
	LOG = "LOG"
)

// Invariants lists every id in report order.
var Invariants = []string{LOG, I1, I2, I3, I4, I5, I6, I7}

var invariantNames = map[string]string{
	LOG: "log consistency",
	I1:  "atomicity",
	I2:  "no double booking",
	I3:  "durable decisions",
	I4:  "fencing",
	I5:  "termination",
	I6:  "exactly-once effect",
	I7:  "no early expiry",
}

// InvariantName is the short human name of an invariant id.
func InvariantName(id string) string { return invariantNames[id] }

// Violation is one breach of one invariant. The id fields say where; empty means not
// applicable.
type Violation struct {
	Invariant string `json:"invariant"`
	TxID      string `json:"txid,omitempty"`
	Player    string `json:"player,omitempty"`
	Shard     string `json:"shard,omitempty"`
	Node      string `json:"node,omitempty"`
	Message   string `json:"message"`
}

func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Invariant)
	for _, kv := range [][2]string{{"txid", v.TxID}, {"player", v.Player}, {"shard", v.Shard}, {"node", v.Node}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	b.WriteString(": ")
	b.WriteString(v.Message)
	return b.String()
}

// Report is the result of checking a history.
type Report struct {
	Violations []Violation    `json:"violations"`
	Stats      map[string]int `json:"stats"`
	Notes      []string       `json:"notes,omitempty"` // checks or parts skipped, and why
}

// OK reports whether no invariant was violated.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Count is the number of violations of one invariant.
func (r Report) Count(invariant string) int {
	n := 0
	for _, v := range r.Violations {
		if v.Invariant == invariant {
			n++
		}
	}
	return n
}

// Has reports whether the invariant was violated at least once.
func (r Report) Has(invariant string) bool { return r.Count(invariant) > 0 }

// String is a plain-text summary: verdict, counts per invariant, every violation, notes.
func (r Report) String() string {
	var b strings.Builder
	if r.OK() {
		b.WriteString("history check: PASS")
	} else {
		fmt.Fprintf(&b, "history check: FAIL (%d violations)", len(r.Violations))
	}
	for _, id := range Invariants {
		fmt.Fprintf(&b, " %s=%d", id, r.Count(id))
	}
	b.WriteString("\n")
	for _, v := range r.Violations {
		b.WriteString("  ")
		b.WriteString(v.String())
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// markdownLimit caps the violations listed per invariant in Markdown.
const markdownLimit = 50

// Markdown renders the report for a run's report file.
func (r Report) Markdown() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "## History check: %s\n\n| invariant | | result | violations |\n|---|---|---|---|\n", verdict)
	for _, id := range Invariants {
		res := "ok"
		if r.Has(id) {
			res = "**violated**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", id, invariantNames[id], res, r.Count(id))
	}
	if len(r.Stats) > 0 {
		b.WriteString("\n### Stats\n\n| stat | count |\n|---|---|\n")
		for _, k := range sortedKeys(r.Stats) {
			fmt.Fprintf(&b, "| %s | %d |\n", k, r.Stats[k])
		}
	}
	if !r.OK() {
		b.WriteString("\n### Violations\n")
		for _, id := range Invariants {
			n := 0
			for _, v := range r.Violations {
				if v.Invariant != id {
					continue
				}
				if n == 0 {
					fmt.Fprintf(&b, "\n#### %s %s\n\n", id, invariantNames[id])
				}
				if n++; n <= markdownLimit {
					fmt.Fprintf(&b, "- `%s`\n", mdEscape(v.String()))
				}
			}
			if n > markdownLimit {
				fmt.Fprintf(&b, "- … and %d more\n", n-markdownLimit)
			}
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n### Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "`", "'") }

// sortViolations orders violations by invariant (report order), then location and text,
// so that a report is deterministic.
func sortViolations(vs []Violation) {
	rank := make(map[string]int, len(Invariants))
	for i, id := range Invariants {
		rank[id] = i
	}
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			cmp.Compare(rank[a.Invariant], rank[b.Invariant]),
			cmp.Compare(a.TxID, b.TxID),
			cmp.Compare(a.Player, b.Player),
			cmp.Compare(a.Shard, b.Shard),
			cmp.Compare(a.Node, b.Node),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
