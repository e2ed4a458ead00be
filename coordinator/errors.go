package coordinator

import (
	"errors"
	"fmt"
)

// Errors returned by the coordinator. Test with errors.Is.
var (
	// ErrNotLeader: this node is not the leader; NotLeaderError carries the leader's id.
	ErrNotLeader = errors.New("coordinator: not leader")
	// ErrInvalid: the request is malformed; nothing was changed.
	ErrInvalid = errors.New("coordinator: invalid request")
	// ErrOutcomeUnknown: the request may or may not have taken effect (timeout, leader
	// lost mid-write). Ask Status with the same proposal id or txid; never retry under a
	// new id.
	ErrOutcomeUnknown = errors.New("coordinator: outcome unknown")
	// ErrNotFound: no such transaction (or it was compacted after its retention).
	ErrNotFound = errors.New("coordinator: not found")
	// ErrConflict: the transaction is in a state that does not allow the call, e.g.
	// renewing an aborted or released match.
	ErrConflict = errors.New("coordinator: conflict")
	// ErrClosed: the node is shutting down.
	ErrClosed = errors.New("coordinator: closed")
)

// NotLeaderError says which node leads, when known.
type NotLeaderError struct{ LeaderID, LeaderAddr string }

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "coordinator: not leader (leader unknown)"
	}
	return fmt.Sprintf("coordinator: not leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// InvalidError names what is wrong with a request.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("coordinator: invalid request: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// UnknownOutcomeError carries what is known of an indeterminate request.
type UnknownOutcomeError struct {
	TxID, ProposalID string
	Cause            error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("coordinator: outcome of proposal %q (txid %q) unknown: %v", e.ProposalID, e.TxID, e.Cause)
}

// Is makes errors.Is(err, ErrOutcomeUnknown) true.
func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the cause.
func (e *UnknownOutcomeError) Unwrap() error { return e.Cause }
