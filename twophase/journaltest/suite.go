// Package journaltest is the conformance suite for twophase.Journal: the participant's
// durable record of votes, outcomes and the highest fencing token per player. Every
// journal (the in-memory one, the bbolt one, a game's own on its database) runs the
// same checks, so they are interchangeable behind the interface.
//
// A game that keeps its journal in its own database runs the suite from a test:
//
//	func TestMyJournal(t *testing.T) {
//		journaltest.Run(t, journaltest.Harness{
//			Open:   func(t *testing.T) twophase.Journal { return openMine(t, t.TempDir()) },
//			Reopen: func(t *testing.T, j twophase.Journal) twophase.Journal { return reopenMine(t, j) },
//		})
//	}
//
// Each check is also exported as a function that returns an error instead of failing
// the test, so the suite's own tests run it against deliberately broken journals and
// prove that it catches them.
package journaltest

import (
	"errors"
	"testing"
)

// Harness is how the suite drives one journal implementation.
type Harness struct {
	// Open returns a fresh, empty journal. It should register its own cleanup with
	// t.Cleanup; the checks may Close it themselves (Close twice must be safe).
	Open func(t *testing.T) Journal
	// Reopen closes j and opens the same storage again, as a restarted process would.
	// Nil for a journal that keeps nothing across Close (the in-memory one): the
	// durability check is then skipped.
	Reopen func(t *testing.T, j Journal) Journal
}

// Check is one named conformance check. Fn returns nil if the journal conforms and an
// error describing the first violation otherwise; it never fails t itself.
type Check struct {
	Name string
	Fn   func(t *testing.T, h Harness) error
}

// Checks returns every check, in the order Run runs them.
func Checks() []Check {
	return []Check{
		{"GetMissing", CheckGetMissing},
		{"RoundTripAndOverwrite", CheckRoundTripAndOverwrite},
		{"RejectsInvalid", CheckRejectsInvalid},
		{"NoAliasing", CheckNoAliasing},
		{"ListSortedAndDelete", CheckListSortedAndDelete},
		{"TokensOnlyRise", CheckTokensOnlyRise},
		{"Concurrent", CheckConcurrent},
		{"Closed", CheckClosed},
		{"SurvivesReopen", CheckSurvivesReopen},
	}
}

// Run runs every check as a subtest of t.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal(errors.New("journaltest: Harness.Open is nil"))
	}
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			if err := c.Fn(t, h); err != nil {
				t.Fatal(err)
			}
		})
	}
}
