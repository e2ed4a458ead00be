package client

import (
	"context"
	"errors"
	"fmt"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Errors returned by the client. Test them with errors.Is.
var (
	// ErrInvalid: the coordinator refused the request as malformed (bad field, unknown
	// or draining shard). Nothing changed; sending it again as is will not help.
	// *InvalidError names the field.
	ErrInvalid = errors.New("client: invalid request")
	// ErrOutcomeUnknown: the context ended before a definite answer; the request may
	// or may not take effect. Retry with the same proposal id, or ask Status. Never
	// retry a proposal under a new id. *OutcomeUnknownError says what is known.
	ErrOutcomeUnknown = errors.New("client: outcome unknown")
	// ErrNotFound: the coordinator has no such transaction (never created, or
	// forgotten after its retention).
	ErrNotFound = errors.New("client: not found")
	// ErrConflict: the transaction's state does not allow the call (renewing an
	// aborted, released or expired match).
	ErrConflict = errors.New("client: conflict")
	// ErrUnavailable: no leader answered before the context ended (election in
	// progress, coordinators down, NATS unreachable). A read or a call that certainly
	// reached no leader fails with it; a write that may have reached one fails with
	// ErrOutcomeUnknown instead.
	ErrUnavailable = errors.New("client: coordinator unavailable")
	// ErrClosed: the client or its NATS connection is closed.
	ErrClosed = errors.New("client: closed")
)

// InvalidError says what the coordinator found wrong with a request.
type InvalidError struct {
	Field   string // the offending field, e.g. "teams[0].players[1].shard_id"
	Message string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "client: invalid request: " + e.Message
	}
	return fmt.Sprintf("client: invalid request: %s: %s", e.Field, e.Message)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// OutcomeUnknownError is a request whose outcome is not known yet.
type OutcomeUnknownError struct {
	ProposalID string // the proposal, for Propose
	TxID       string // the transaction, if known (a Status answer named it)
	Cause      error  // why no answer came: the context's error, and the last failure
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("client: outcome of proposal %q (txid %q) unknown: %v", e.ProposalID, e.TxID, e.Cause)
}

// Is makes errors.Is(err, ErrOutcomeUnknown) true.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the cause.
func (e *OutcomeUnknownError) Unwrap() error { return e.Cause }

// IsRetryable reports whether repeating the same call (the same proposal, with the
// same proposal_id; the same txid) may succeed: after ErrOutcomeUnknown, ErrUnavailable
// or a context error. ErrInvalid, ErrNotFound, ErrConflict and ErrClosed are final.
func IsRetryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	}
	return false
}

// apiErr turns a definite wire error into the client's error. It returns nil for the
// codes a caller retries on (NOT_LEADER, OUTCOME_UNKNOWN, UNAVAILABLE).
func apiErr(op string, e *smv1.ApiError) error {
	switch e.GetCode() {
	case smv1.ErrorCode_ERROR_CODE_INVALID:
		return &InvalidError{Field: e.GetField(), Message: e.GetMessage()}
	case smv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return fmt.Errorf("client: %s: %w: %s", op, ErrNotFound, e.GetMessage())
	case smv1.ErrorCode_ERROR_CODE_CONFLICT:
		return fmt.Errorf("client: %s: %w: %s", op, ErrConflict, e.GetMessage())
	}
	return nil
}
