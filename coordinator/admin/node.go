package admin

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Node is the coordinator replica a Server reports on and acts through.
// *coordinator.Node satisfies it.
type Node interface {
	// ID is the node's Raft server id.
	ID() string
	// IsLeader reports whether the node leads and has finished taking over.
	IsLeader() bool
	// Status is the linearizable transaction read (leader only).
	Status(ctx context.Context, id string) (*smv1.TxnRecord, error)
	// Raft is the node's Raft instance; the server reads its state and asks it for
	// membership changes and leadership transfers.
	Raft() *raft.Raft
	// FSM is the node's replicated state, read locally.
	FSM() *coordinator.FSM
}

// ForceAborter is the optional Node method behind POST /v1/txns/{id}/abort. ForceAbort
// logs Decide(ABORTED, OPERATOR_ABORT) for txid if it is still PREPARING and returns
// once that decision is applied; the leader's driver then delivers it. It fails with a
// *coordinator.NotLeaderError off the leader, coordinator.ErrNotFound for an unknown
// txid, coordinator.ErrConflict when the txn is already decided (an operator must never
// override a decision), and a *coordinator.UnknownOutcomeError when leadership is lost
// mid-write. Until the Node has it the endpoint answers 501.
type ForceAborter interface {
	ForceAbort(ctx context.Context, txid string) error
}

// Operator is the optional Node side of the transaction and shard actions and of the
// dead-letter list: POST /v1/txns/{id}/redrive and /resolve, POST
// /v1/shards/{id}/state, GET /v1/deadletters's attempts. *coordinator.Node implements
// it; without it those endpoints answer 501. Each method's errors follow ForceAbort's.
type Operator interface {
	// Redrive sends txid's decision now to the shards that have not acknowledged it
	// and returns them.
	Redrive(ctx context.Context, txid string) ([]string, error)
	// Resolve logs a DISABLED shard's acknowledgement of txid's decision.
	Resolve(ctx context.Context, txid, shard string) error
	// SetShardState changes a shard's state through Raft.
	SetShardState(ctx context.Context, id string, st smv1.ShardState) error
	// DeliveryAttempts is how many times the leader sent txid's decision to each shard
	// this term; ok is false off the leader or when it is not delivering txid.
	DeliveryAttempts(txid string) (attempts map[string]int, ok bool)
}

// DriverStatser is the optional Node method that exposes the current leadership term's
// two-phase-commit driver counters; ok is false when the node does not lead.
type DriverStatser interface {
	DriverStats() (stats twophase.DriverStats, ok bool)
}

// raftAPI is the part of *raft.Raft the server uses; unit tests fake it.
type raftAPI interface {
	State() raft.RaftState
	LeaderWithID() (raft.ServerAddress, raft.ServerID)
	CurrentTerm() uint64
	CommitIndex() uint64
	AppliedIndex() uint64
	LastIndex() uint64
	LastContact() time.Time
	GetConfiguration() raft.ConfigurationFuture
	LeadershipTransfer() raft.Future
	LeadershipTransferToServer(id raft.ServerID, address raft.ServerAddress) raft.Future
	AddVoter(id raft.ServerID, address raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture
	RemoveServer(id raft.ServerID, prevIndex uint64, timeout time.Duration) raft.IndexFuture
}

// stateAPI is the part of *coordinator.FSM the server reads; unit tests fake it.
type stateAPI interface {
	Txn(txid string) (*smv1.TxnRecord, bool)
	TxnByProposal(pid string) (*smv1.TxnRecord, bool)
	Lease(player string) (lease.Lease, bool)
	Shards() []*smv1.ShardInfo
	Unfinished() []*smv1.TxnRecord
	Counts() coordinator.Counts
	AppliedIndex() uint64
	InDoubtByShard() map[string]int
	Shard(id string) (*smv1.ShardInfo, bool)
	ListTxns(q coordinator.TxnQuery) (coordinator.TxnPage, error)
}

var (
	_ Node     = (*coordinator.Node)(nil)
	_ raftAPI  = (*raft.Raft)(nil)
	_ stateAPI = (*coordinator.FSM)(nil)
	_ Operator = (*coordinator.Node)(nil)
)

// localTxn finds id, a txid or a proposal id, in this node's FSM.
func localTxn(st stateAPI, id string) (*smv1.TxnRecord, bool) {
	if rec, ok := st.Txn(id); ok {
		return rec, true
	}
	return st.TxnByProposal(id)
}
