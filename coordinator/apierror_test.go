package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func TestAPIError(t *testing.T) {
	cases := []struct {
		err  error
		code smv1.ErrorCode
	}{
		{&InvalidError{Field: "teams", Reason: "none"}, smv1.ErrorCode_ERROR_CODE_INVALID},
		{&NotLeaderError{LeaderID: "c2"}, smv1.ErrorCode_ERROR_CODE_NOT_LEADER},
		{&UnknownOutcomeError{TxID: "tx-1-0", Cause: context.DeadlineExceeded}, smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN},
		{fmt.Errorf("%w: txn x", ErrNotFound), smv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{fmt.Errorf("%w: released", ErrConflict), smv1.ErrorCode_ERROR_CODE_CONFLICT},
		{ErrClosed, smv1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{errors.New("boom"), smv1.ErrorCode_ERROR_CODE_UNAVAILABLE},
	}
	for _, c := range cases {
		if got := APIError(c.err); got.GetCode() != c.code {
			t.Errorf("APIError(%v) = %s, want %s", c.err, got.GetCode(), c.code)
		}
	}
	if e := APIError(&InvalidError{Field: "teams"}); e.GetField() != "teams" {
		t.Error("field lost")
	}
	if e := APIError(&NotLeaderError{LeaderID: "c2"}); e.GetLeaderId() != "c2" {
		t.Error("leader hint lost")
	}
	if APIError(nil) != nil {
		t.Error("nil error translated")
	}
}
