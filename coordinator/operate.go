package coordinator

import (
	"context"
	"fmt"
	"slices"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Operator actions on decided transactions, for the admin API. Each works on the
// leader only (*NotLeaderError elsewhere) and never changes a decision.

// Redrive has the leader send txid's decision now to every shard that has not
// acknowledged it, restarting the delivery's backoff, and returns those shards. It
// fails with ErrNotFound for an unknown txn and ErrConflict when the txn is undecided
// (nothing to deliver yet) or every shard has acknowledged it.
func (n *Node) Redrive(_ context.Context, txid string) ([]string, error) {
	ls := n.leaderState()
	if ls == nil {
		return nil, n.notLeader()
	}
	rec, ok := n.fsm.Txn(txid)
	if !ok {
		return nil, fmt.Errorf("%w: txn %q", ErrNotFound, txid)
	}
	if !twophase.Decided(rec.GetState()) {
		return nil, fmt.Errorf("%w: txn %s is %s: it has no decision to deliver yet", ErrConflict, txid, rec.GetState())
	}
	pending := unacked(rec)
	if len(pending) == 0 {
		return nil, fmt.Errorf("%w: txn %s is acknowledged by every shard", ErrConflict, txid)
	}
	if !ls.driver.Redrive(txid) {
		// Not driven in this term (its run ended before the last ack, or was never
		// started): drive it afresh, which delivers at once.
		ls.driver.Start(n.plan(rec, false))
	}
	return pending, nil
}

// Resolve logs shard's acknowledgement of txid's decision on the shard's behalf. It is
// how an operator clears the decisions owed to a shard retired for good: the shard must
// be DISABLED (ErrConflict otherwise, as for an undecided txn or one the shard has
// acknowledged already); ErrNotFound for an unknown txn or shard, *InvalidError for a
// shard the txn does not involve. The leader stops delivering to that shard.
func (n *Node) Resolve(ctx context.Context, txid, shard string) error {
	ls := n.leaderState()
	if ls == nil {
		return n.notLeader()
	}
	rec, ok := n.fsm.Txn(txid)
	if !ok {
		return fmt.Errorf("%w: txn %q", ErrNotFound, txid)
	}
	if !slices.Contains(rec.GetShards(), shard) {
		return &InvalidError{Field: "shard", Reason: fmt.Sprintf("%q is not a shard of txn %s (its shards: %v)", shard, txid, rec.GetShards())}
	}
	info, ok := n.fsm.Shard(shard)
	switch {
	case !ok:
		return fmt.Errorf("%w: shard %q is not registered", ErrNotFound, shard)
	case info.GetState() != smv1.ShardState_SHARD_STATE_DISABLED:
		return fmt.Errorf("%w: shard %s is %s: only a DISABLED (retired) shard's acknowledgement may be recorded for it; "+
			"disable it first, or redrive the txn if the shard is coming back", ErrConflict, shard, info.GetState())
	case !twophase.Decided(rec.GetState()):
		return fmt.Errorf("%w: txn %s is %s: abort it first", ErrConflict, txid, rec.GetState())
	case slices.Contains(rec.GetAcked(), shard):
		return fmt.Errorf("%w: shard %s has acknowledged txn %s already", ErrConflict, shard, txid)
	}
	res, err := n.batch.apply(ctx, &smv1.Command{Op: &smv1.Command_Acked{Acked: &smv1.Acked{Txid: txid, ShardId: shard}}})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	ls.driver.Settle(txid, shard)
	n.log.Info("decision resolved for a disabled shard", "txid", txid, "shard", shard)
	return nil
}

// DeliveryAttempts reports how many times the leader has sent txid's decision to each
// shard in its current term; ok is false off the leader or when the leader is not
// delivering txid.
func (n *Node) DeliveryAttempts(txid string) (attempts map[string]int, ok bool) {
	ls := n.leaderState()
	if ls == nil {
		return nil, false
	}
	return ls.driver.DecisionSends(txid)
}

// unacked lists rec's shards that have not acknowledged its decision, sorted.
func unacked(rec *smv1.TxnRecord) []string {
	var out []string
	for _, s := range rec.GetShards() {
		if !slices.Contains(rec.GetAcked(), s) {
			out = append(out, s)
		}
	}
	return out
}
