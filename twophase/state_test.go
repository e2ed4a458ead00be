package twophase

import (
	"errors"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func TestTransitionTable(t *testing.T) {
	P, C, A, D := smv1.TxnState_TXN_STATE_PREPARING, smv1.TxnState_TXN_STATE_COMMITTED,
		smv1.TxnState_TXN_STATE_ABORTED, smv1.TxnState_TXN_STATE_DONE
	cases := []struct {
		from smv1.TxnState
		ev   Event
		to   smv1.TxnState
		err  error
	}{
		{P, EventDecideCommit, C, nil},
		{P, EventDecideAbort, A, nil},
		{P, EventAllAcked, P, ErrBadTransition},
		{C, EventDecideAbort, C, ErrAlreadyDecided},
		{C, EventDecideCommit, C, ErrAlreadyDecided},
		{A, EventDecideCommit, A, ErrAlreadyDecided},
		{C, EventAllAcked, D, nil},
		{A, EventAllAcked, D, nil},
		{D, EventAllAcked, D, nil},
		{D, EventDecideAbort, D, ErrAlreadyDecided},
		{smv1.TxnState_TXN_STATE_UNSPECIFIED, EventDecideCommit, smv1.TxnState_TXN_STATE_UNSPECIFIED, ErrBadTransition},
	}
	for _, c := range cases {
		to, err := Transition(c.from, c.ev)
		if to != c.to || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("Transition(%s, %s) = %s, %v; want %s, %v", c.from, c.ev, to, err, c.to, c.err)
		}
	}
}

// Every reachable path decides at most once: once decided, the outcome never changes.
func TestTransitionDecisionNeverChanges(t *testing.T) {
	events := []Event{EventDecideCommit, EventDecideAbort, EventAllAcked}
	var walk func(s smv1.TxnState, outcome smv1.TxnState, depth int)
	walk = func(s, outcome smv1.TxnState, depth int) {
		if depth == 0 {
			return
		}
		for _, ev := range events {
			next, err := Transition(s, ev)
			if err != nil {
				continue
			}
			o := outcome
			if next == smv1.TxnState_TXN_STATE_COMMITTED || next == smv1.TxnState_TXN_STATE_ABORTED {
				if o != smv1.TxnState_TXN_STATE_UNSPECIFIED && o != next {
					t.Fatalf("decision changed from %s to %s", o, next)
				}
				o = next
			}
			walk(next, o, depth-1)
		}
	}
	walk(smv1.TxnState_TXN_STATE_PREPARING, smv1.TxnState_TXN_STATE_UNSPECIFIED, 6)
}

func TestTally(t *testing.T) {
	yes := func(s string) *smv1.Vote { return &smv1.Vote{ShardId: s, Vote: smv1.VoteValue_VOTE_YES} }
	no := func(s string) *smv1.Vote { return &smv1.Vote{ShardId: s, Vote: smv1.VoteValue_VOTE_NO} }

	tl := NewTally([]string{"a", "b"})
	if d, _ := tl.Verdict(); d {
		t.Fatal("decided with no votes")
	}
	if !tl.Add(yes("a")) || tl.Add(yes("a")) || tl.Add(yes("x")) {
		t.Fatal("duplicate or foreign vote counted")
	}
	if d, _ := tl.Verdict(); d {
		t.Fatal("decided with one of two votes")
	}
	if got := tl.Missing(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("Missing = %v", got)
	}
	tl.Add(yes("b"))
	if d, c := tl.Verdict(); !d || !c {
		t.Fatal("all YES did not commit")
	}

	tl = NewTally([]string{"a", "b"})
	tl.Add(no("b"))
	if d, c := tl.Verdict(); !d || c {
		t.Fatal("a NO did not abort at once")
	}
	if tl.Add(&smv1.Vote{ShardId: "a"}) {
		t.Fatal("unspecified vote counted")
	}
}
