package policy

import "errors"

// Errors returned by the engine. Test with errors.Is; returned errors wrap these
// with detail.
var (
	// ErrInvalidInput: the proposal or shard list cannot be turned into an input
	// document (nil proposal, nil team or player, empty player id, ...). The
	// verdict that comes with it denies with code INVALID_INPUT.
	ErrInvalidInput = errors.New("policy: invalid input")

	// ErrEvaluation: the policy could not be evaluated (error, timeout,
	// cancellation, undefined or malformed answer). The verdict that comes with it
	// denies with code POLICY_ERROR. A timeout also matches
	// context.DeadlineExceeded.
	ErrEvaluation = errors.New("policy: evaluation failed")

	// ErrBundle: a bundle could not be read, compiled or validated. At New it means
	// there is no engine; at Reload it means the previous policy stays in use.
	ErrBundle = errors.New("policy: bad bundle")

	// ErrConfig: a Config field is out of range; the message names the field.
	ErrConfig = errors.New("policy: bad config")
)
