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
}

var (
	_ Node     = (*coordinator.Node)(nil)
	_ raftAPI  = (*raft.Raft)(nil)
	_ stateAPI = (*coordinator.FSM)(nil)
)

// localTxn finds id, a txid or a proposal id, in this node's FSM.
func localTxn(st stateAPI, id string) (*smv1.TxnRecord, bool) {
	if rec, ok := st.Txn(id); ok {
		return rec, true
	}
	return st.TxnByProposal(id)
}
