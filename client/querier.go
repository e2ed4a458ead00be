package client

import (
	"context"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// StatusQuerier answers a recovering shard's question "what became of txid?" with a
// Status call; it implements twophase.OutcomeQuerier (pass it as
// natstransport.ParticipantConfig.Querier or to Participant.Recover).
type StatusQuerier struct {
	Client *Client
	// Timeout, if > 0, bounds one query; otherwise it retries until the caller's
	// context ends.
	Timeout time.Duration
}

// Outcome returns COMMITTED or ABORTED once txid is decided and OUTCOME_PENDING while
// it is not; an error (ErrNotFound, ErrUnavailable) leaves the shard in doubt.
func (q StatusQuerier) Outcome(ctx context.Context, txid string) (smv1.Outcome, error) {
	if q.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.Timeout)
		defer cancel()
	}
	rec, err := q.Client.Status(ctx, txid)
	if err != nil {
		return smv1.Outcome_OUTCOME_PENDING, err
	}
	if decided(rec) {
		return rec.GetDecision().GetOutcome(), nil
	}
	return smv1.Outcome_OUTCOME_PENDING, nil
}
