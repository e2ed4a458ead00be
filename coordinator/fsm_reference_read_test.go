package coordinator

import (
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Read methods of refFSM (fsm_reference_test.go), as fsm_read.go had them.

// Txn returns the transaction txid.
func (f *refFSM) Txn(txid string) (*smv1.TxnRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.txns[txid]
	if !ok {
		return nil, false
	}
	return proto.Clone(t).(*smv1.TxnRecord), true
}

// TxnByProposal returns the transaction created for proposal id pid.
func (f *refFSM) TxnByProposal(pid string) (*smv1.TxnRecord, bool) {
	f.mu.RLock()
	txid, ok := f.byProposal[pid]
	f.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return f.Txn(txid)
}

// Lease returns player's lease.
func (f *refFSM) Lease(player string) (lease.Lease, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.Get(player)
}

// Shard returns a registered shard.
func (f *refFSM) Shard(id string) (*smv1.ShardInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.shards[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(s).(*smv1.ShardInfo), true
}

// Shards lists the registered shards sorted by id.
func (f *refFSM) Shards() []*smv1.ShardInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*smv1.ShardInfo, 0, len(f.shards))
	for _, s := range f.shards {
		out = append(out, proto.Clone(s).(*smv1.ShardInfo))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardId < out[j].ShardId })
	return out
}

// Unfinished lists, sorted by txid, the transactions a leader must drive: PREPARING, or
// decided and not acknowledged by every shard.
func (f *refFSM) Unfinished() []*smv1.TxnRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*smv1.TxnRecord
	for _, t := range f.txns {
		if t.State != smv1.TxnState_TXN_STATE_DONE {
			out = append(out, proto.Clone(t).(*smv1.TxnRecord))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Txid < out[j].Txid })
	return out
}

// ActiveMatches lists the committed matches whose leases are live.
func (f *refFSM) ActiveMatches() []lease.Match {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.ActiveMatches()
}

// Finished lists the txids that Forget may drop: DONE, and leases ended.
func (f *refFSM) Finished() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	for id, t := range f.txns {
		if t.State == smv1.TxnState_TXN_STATE_DONE &&
			(t.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED || t.GetLeaseEnd() != "") {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// AppliedIndex is the index of the last entry applied.
func (f *refFSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Counts returns the sizes of the state.
func (f *refFSM) Counts() Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := Counts{Txns: len(f.txns), Leases: f.leases.Len(), Shards: len(f.shards)}
	for _, t := range f.txns {
		switch {
		case t.State == smv1.TxnState_TXN_STATE_PREPARING:
			c.Preparing++
		case twophase.Decided(t.State) && t.State != smv1.TxnState_TXN_STATE_DONE:
			c.Undelivered++
		}
	}
	return c
}

// InDoubtByShard counts, per shard, the decided transactions that shard has not yet
// acknowledged: the shard holds them prepared (in doubt) until the decision reaches
// it. Registered shards with none are present with 0.
func (f *refFSM) InDoubtByShard() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]int, len(f.shards))
	for id := range f.shards {
		out[id] = 0
	}
	for _, t := range f.txns {
		if !twophase.Decided(t.State) || t.State == smv1.TxnState_TXN_STATE_DONE {
			continue
		}
		for _, s := range t.Shards {
			if _, acked := slices.BinarySearch(t.Acked, s); !acked {
				out[s]++
			}
		}
	}
	return out
}

func (f *refFSM) pristine() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.txns) == 0 && f.leases.MaxToken() == 0
}

func (f *refFSM) MaxToken() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.MaxToken()
}
