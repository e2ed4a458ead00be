package scenario

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// Expectation is one entry of Expect.Violations:
//
//	"I1"      I1 must be reported
//	"I1|I3"   at least one of I1 and I3 must be reported
//	"I5?"     I5 may be reported but need not be
//
// A run that expects violations passes when every required entry is met and every
// invariant reported is named by some entry; a run that expects none passes only
// with no violation at all.
type Expectation struct {
	AnyOf    []string // invariant ids, at least one
	Optional bool
}

// ParseExpectation parses one Expect.Violations entry.
func ParseExpectation(entry string) (Expectation, error) {
	var e Expectation
	body, opt := strings.CutSuffix(strings.TrimSpace(entry), "?")
	e.Optional = opt
	for _, id := range strings.Split(body, "|") {
		id = strings.TrimSpace(id)
		if !slices.Contains(history.Invariants, id) {
			return Expectation{}, fmt.Errorf("%q is not an invariant (%s; write I1|I3 for either, I5? for may)",
				id, strings.Join(history.Invariants, ", "))
		}
		if !slices.Contains(e.AnyOf, id) {
			e.AnyOf = append(e.AnyOf, id)
		}
	}
	return e, nil
}

// String is the entry's canonical form, e.g. "I1|I3" or "I5?".
func (e Expectation) String() string {
	s := strings.Join(e.AnyOf, "|")
	if e.Optional {
		s += "?"
	}
	return s
}

// Met reports whether the entry is satisfied given the invariants reported.
func (e Expectation) Met(reported func(id string) bool) bool {
	return e.Optional || slices.ContainsFunc(e.AnyOf, reported)
}
