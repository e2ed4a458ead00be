package workload

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/client"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// Recording is a shardsvc.Proposer that records every call it passes to Inner into
// Rec: a Propose as an OpPropose with the proposal's players and TTL, a Renew or
// Release as an OpRenew or OpRelease, each with what the caller was told.
//
// Errors are classified the way the client documents them: ErrInvalid, ErrNotFound
// and ErrConflict mean "certainly not applied" (ResultFail); anything else, above all
// ErrOutcomeUnknown and ErrUnavailable on a write, may have been applied
// (ResultUnknown). Only a returned Decision is a definite Propose outcome.
type Recording struct {
	Inner shardsvc.Proposer
	Rec   *history.Recorder
	seq   atomic.Uint64
}

var _ shardsvc.Proposer = (*Recording)(nil)

func (r *Recording) process(kind string) string {
	return fmt.Sprintf("%s%d", kind, r.seq.Add(1))
}

// Propose records and forwards p.
func (r *Recording) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	op := history.Op{Process: r.process("p"), Kind: history.OpPropose, ProposalID: p.GetProposalId(),
		TTL: time.Duration(p.GetMatchTtlMs()) * time.Millisecond}
	for _, t := range p.GetTeams() {
		for _, pl := range t.GetPlayers() {
			op.Players = append(op.Players, history.PlayerRef{Player: pl.GetPlayerId(), Shard: pl.GetShardId()})
		}
	}
	call := r.Rec.Invoke(op)
	d, err := r.Inner.Propose(ctx, p)
	call.Return(ProposeReply(d, err))
	return d, err
}

// ProposeReply is what a Propose that returned (d, err) told its caller.
func ProposeReply(d *smv1.Decision, err error) history.Reply {
	switch {
	case err != nil && errors.Is(err, client.ErrInvalid):
		return history.Reply{Result: history.ResultFail}
	case err != nil || d == nil:
		return history.Reply{Result: history.ResultUnknown}
	case d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED:
		tokens := make(map[string]uint64, len(d.GetPlayers()))
		for _, pd := range d.GetPlayers() {
			tokens[pd.GetPlayerId()] = pd.GetFencingToken()
		}
		return history.Reply{Result: history.ResultCommitted, TxID: d.GetTxid(), Tokens: tokens}
	default:
		return history.Reply{Result: history.ResultAborted, TxID: d.GetTxid(), Reason: d.GetReason().String()}
	}
}

// Renew records and forwards a renewal of txid.
func (r *Recording) Renew(ctx context.Context, txid string) error {
	return r.lease(ctx, history.OpRenew, txid, r.Inner.Renew)
}

// Release records and forwards a release of txid.
func (r *Recording) Release(ctx context.Context, txid string) error {
	return r.lease(ctx, history.OpRelease, txid, r.Inner.Release)
}

func (r *Recording) lease(ctx context.Context, kind history.OpKind, txid string, f func(context.Context, string) error) error {
	call := r.Rec.Invoke(history.Op{Process: r.process("h"), Kind: kind, TxID: txid})
	err := f(ctx, txid)
	call.Return(LeaseReply(err))
	return err
}

// LeaseReply is what a Renew or Release that returned err told its caller.
func LeaseReply(err error) history.Reply {
	switch {
	case err == nil:
		return history.Reply{Result: history.ResultOK}
	case errors.Is(err, client.ErrConflict), errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrInvalid):
		return history.Reply{Result: history.ResultFail}
	default:
		return history.Reply{Result: history.ResultUnknown}
	}
}
