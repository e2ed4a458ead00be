package collect

import (
	"context"
	"sync"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// LeaseRecorder receives the lease changes a coordinator node applies, in apply
// order. *Sink (across processes) and Recorder (in-process tests) implement it.
type LeaseRecorder interface{ Lease(history.LeaseEvent) }

// ShardRecorder receives the effects a shard applies, in apply order. *Sink and
// Recorder implement it.
type ShardRecorder interface{ Shard(history.ShardEvent) }

var (
	_ LeaseRecorder = (*Sink)(nil)
	_ ShardRecorder = (*Sink)(nil)
	_ LeaseRecorder = Recorder{}
	_ ShardRecorder = Recorder{}
)

// Recorder adapts an in-process history.Recorder to LeaseRecorder and ShardRecorder,
// so the in-process cluster tests record through the same mappings as the real
// binaries. The Recorder stamps At and assigns Seq itself.
type Recorder struct{ Rec *history.Recorder }

// Lease records ev with Rec.RecordLease.
func (r Recorder) Lease(ev history.LeaseEvent) { r.Rec.RecordLease(ev) }

// Shard records ev with Rec.RecordShard.
func (r Recorder) Shard(ev history.ShardEvent) { r.Rec.RecordShard(ev) }

var leaseKinds = map[coordinator.EventKind]history.LeaseEventKind{
	coordinator.EventLeaseGranted:   history.LeaseGranted,
	coordinator.EventLeaseActivated: history.LeaseActivated,
	coordinator.EventLeaseRenewed:   history.LeaseRenewed,
	coordinator.EventLeaseReleased:  history.LeaseReleased,
	coordinator.EventLeaseExpired:   history.LeaseExpired,
	coordinator.EventLeaseFreed:     history.LeaseFreed,
	coordinator.EventRestored:       history.LeaseRestored,
}

// LeaseEventOf maps an FSM event of node to the history's lease event. It reports
// false for events that are not lease changes (decided, done). At is left zero for the
// recorder to stamp.
func LeaseEventOf(node string, ev coordinator.Event) (history.LeaseEvent, bool) {
	kind, ok := leaseKinds[ev.Kind]
	if !ok {
		return history.LeaseEvent{}, false
	}
	le := history.LeaseEvent{Node: node, Index: ev.Index, Kind: kind, TxID: ev.TxID}
	for _, l := range ev.Leases {
		le.Players = append(le.Players, history.PlayerToken{Player: l.Player, Token: l.Token})
		le.TTL, le.RenewSeq = l.TTL, l.RenewSeq
	}
	return le, true
}

// Observer returns a coordinator.Observer that records every lease change node's FSM
// applies into r. The FSM calls it under its lock, in log order, so r sees the node's
// apply order.
func Observer(node string, r LeaseRecorder) coordinator.Observer {
	return &observer{node: node, r: r}
}

type observer struct {
	node string
	r    LeaseRecorder
}

func (o *observer) Observe(ev coordinator.Event) {
	if le, ok := LeaseEventOf(o.node, ev); ok {
		o.r.Lease(le)
	}
}

// ShardEventOf is the history's record of an effect shard applied to players for
// txid. Seq and At are left zero for the recorder.
func ShardEventOf(shard string, kind history.ShardEventKind, txid string, players []*smv1.ShardPlayer) history.ShardEvent {
	ev := history.ShardEvent{Shard: shard, Kind: kind, TxID: txid}
	for _, p := range players {
		ev.Players = append(ev.Players, history.PlayerToken{Player: p.GetPlayerId(), Token: p.GetFencingToken()})
	}
	return ev
}

// RecordingHandler wraps a shard's game handler h so that every effect it applies is
// recorded into r: a Prepare voting YES as prepared, one voting NO as voted_no, a
// Commit or Abort that succeeded as committed or aborted, each with the players and
// their fencing tokens. Failed Commits and Aborts applied nothing and record nothing.
//
// One mutex is held across the inner call and the record, so the order of the records
// is the order in which h applied the effects. That serialises h's calls; chaos runs
// accept it for a history that can be trusted.
func RecordingHandler(shard string, h twophase.ShardHandler, r ShardRecorder) twophase.ShardHandler {
	return &recordingHandler{shard: shard, h: h, r: r}
}

type recordingHandler struct {
	shard string
	h     twophase.ShardHandler
	r     ShardRecorder
	mu    sync.Mutex
}

func (rh *recordingHandler) Prepare(ctx context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	rej, err := rh.h.Prepare(ctx, txid, players)
	if err != nil {
		return nil, err // no vote: nothing happened to record
	}
	kind := history.ShardPrepared
	if len(rej) > 0 {
		kind = history.ShardVotedNo
	}
	rh.r.Shard(ShardEventOf(rh.shard, kind, txid, players))
	return rej, nil
}

func (rh *recordingHandler) Commit(ctx context.Context, txid string, players []*smv1.ShardPlayer) error {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	err := rh.h.Commit(ctx, txid, players)
	if err == nil {
		rh.r.Shard(ShardEventOf(rh.shard, history.ShardCommitted, txid, players))
	}
	return err
}

func (rh *recordingHandler) Abort(ctx context.Context, txid string, players []*smv1.ShardPlayer) error {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	err := rh.h.Abort(ctx, txid, players)
	if err == nil {
		rh.r.Shard(ShardEventOf(rh.shard, history.ShardAborted, txid, players))
	}
	return err
}
