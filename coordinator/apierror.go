package coordinator

import (
	"errors"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// APIError translates an error from this package into its wire form. Only the edges
// (NATS intake, admin HTTP) call it; inside, errors stay typed.
func APIError(err error) *smv1.ApiError {
	if err == nil {
		return nil
	}
	e := &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: err.Error()}
	var inv *InvalidError
	var nl *NotLeaderError
	var un *UnknownOutcomeError
	switch {
	case errors.As(err, &inv):
		e.Code, e.Field = smv1.ErrorCode_ERROR_CODE_INVALID, inv.Field
	case errors.Is(err, ErrInvalid):
		e.Code = smv1.ErrorCode_ERROR_CODE_INVALID
	case errors.As(err, &nl):
		e.Code, e.LeaderId = smv1.ErrorCode_ERROR_CODE_NOT_LEADER, nl.LeaderID
	case errors.As(err, &un):
		e.Code, e.Txid = smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, un.TxID
	case errors.Is(err, ErrOutcomeUnknown):
		e.Code = smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN
	case errors.Is(err, ErrNotFound):
		e.Code = smv1.ErrorCode_ERROR_CODE_NOT_FOUND
	case errors.Is(err, ErrConflict):
		e.Code = smv1.ErrorCode_ERROR_CODE_CONFLICT
	}
	return e
}
