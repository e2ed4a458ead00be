package twophase

import (
	"errors"
	"fmt"
	"sort"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Errors of the transaction state machine.
var (
	// ErrBadTransition is returned for an event the state does not accept.
	ErrBadTransition = errors.New("twophase: transition not allowed")
	// ErrAlreadyDecided is returned when a decision is applied to a decided txn. It is
	// not a failure: the first decision stands and callers report it.
	ErrAlreadyDecided = errors.New("twophase: already decided")
)

// Event drives the transaction state machine.
type Event uint8

// Events, in the order a transaction meets them.
const (
	// EventDecideCommit records a COMMIT decision.
	EventDecideCommit Event = iota + 1
	// EventDecideAbort records an ABORT decision.
	EventDecideAbort
	// EventAllAcked records that every shard acknowledged the decision.
	EventAllAcked
)

func (e Event) String() string {
	switch e {
	case EventDecideCommit:
		return "decide-commit"
	case EventDecideAbort:
		return "decide-abort"
	case EventAllAcked:
		return "all-acked"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// Transition is the transaction state machine:
//
//	PREPARING ──decide-commit──▶ COMMITTED ──all-acked──▶ DONE
//	    └───────decide-abort───▶ ABORTED  ──all-acked──▶ DONE
//
// A second decision returns the current state with ErrAlreadyDecided, so the first
// decision always stands. It is a pure function.
func Transition(from smv1.TxnState, ev Event) (smv1.TxnState, error) {
	switch ev {
	case EventDecideCommit, EventDecideAbort:
		if from == smv1.TxnState_TXN_STATE_PREPARING {
			if ev == EventDecideCommit {
				return smv1.TxnState_TXN_STATE_COMMITTED, nil
			}
			return smv1.TxnState_TXN_STATE_ABORTED, nil
		}
		if Decided(from) {
			return from, ErrAlreadyDecided
		}
	case EventAllAcked:
		if from == smv1.TxnState_TXN_STATE_COMMITTED || from == smv1.TxnState_TXN_STATE_ABORTED {
			return smv1.TxnState_TXN_STATE_DONE, nil
		}
		if from == smv1.TxnState_TXN_STATE_DONE {
			return from, nil
		}
	}
	return from, fmt.Errorf("%w: %s in %s", ErrBadTransition, ev, from)
}

// Decided reports whether a txn in state s has a decision.
func Decided(s smv1.TxnState) bool {
	return s == smv1.TxnState_TXN_STATE_COMMITTED || s == smv1.TxnState_TXN_STATE_ABORTED ||
		s == smv1.TxnState_TXN_STATE_DONE
}

// Tally gathers the votes of one transaction. It is pure: the driver feeds it votes and
// asks for the verdict. The zero value is not usable; use NewTally.
type Tally struct {
	want map[string]bool // shard -> voted
	no   []*smv1.Vote
	yes  int
}

// NewTally expects one vote from each of shards.
func NewTally(shards []string) *Tally {
	t := &Tally{want: make(map[string]bool, len(shards))}
	for _, s := range shards {
		t.want[s] = false
	}
	return t
}

// Add counts a vote. Votes from unexpected shards and repeated votes are ignored, and
// Add reports whether the vote counted.
func (t *Tally) Add(v *smv1.Vote) bool {
	voted, ok := t.want[v.GetShardId()]
	if !ok || voted {
		return false
	}
	switch v.GetVote() {
	case smv1.VoteValue_VOTE_YES:
		t.yes++
	case smv1.VoteValue_VOTE_NO:
		t.no = append(t.no, v)
	default:
		return false
	}
	t.want[v.GetShardId()] = true
	return true
}

// Verdict reports whether the votes decide the transaction and, if so, whether it
// commits: any NO aborts at once, and it commits only when every shard voted YES.
func (t *Tally) Verdict() (decided, commit bool) {
	if len(t.no) > 0 {
		return true, false
	}
	if t.yes == len(t.want) {
		return true, true
	}
	return false, false
}

// Missing lists, sorted, the shards that have not voted.
func (t *Tally) Missing() []string {
	var out []string
	for s, voted := range t.want {
		if !voted {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Rejections lists the NO votes received, in arrival order.
func (t *Tally) Rejections() []*smv1.Vote { return t.no }
