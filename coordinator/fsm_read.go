package coordinator

import (
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Read-side accessors. They return copies the caller owns.

// Txn returns the transaction txid.
func (f *FSM) Txn(txid string) (*smv1.TxnRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.txns.Get(txid)
	if t == nil {
		return nil, false
	}
	return t.record(nil), true
}

// TxnByProposal returns the transaction created for proposal id pid.
func (f *FSM) TxnByProposal(pid string) (*smv1.TxnRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.byPID(pid)
	if !ok {
		return nil, false
	}
	return t.record(nil), true
}

// Lease returns player's lease.
func (f *FSM) Lease(player string) (lease.Lease, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.Get(player)
}

// Shard returns a registered shard.
func (f *FSM) Shard(id string) (*smv1.ShardInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.shards[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(s).(*smv1.ShardInfo), true
}

// ShardTakesBatches reports whether shard id is registered with
// ShardInfo.command_batches, without copying its record (the transport asks on every
// command it sends).
func (f *FSM) ShardTakesBatches(id string) bool {
	m := f.batchShards.Load()
	return m != nil && (*m)[id]
}

// Shards lists the registered shards sorted by id.
func (f *FSM) Shards() []*smv1.ShardInfo {
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
func (f *FSM) Unfinished() []*smv1.TxnRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*smv1.TxnRecord, 0, len(f.open))
	for id := range f.open {
		out = append(out, f.txns.Get(id).record(nil))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Txid < out[j].Txid })
	return out
}

// ActiveMatches lists the committed matches whose leases are live.
func (f *FSM) ActiveMatches() []lease.Match {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.ActiveMatches()
}

// Finished lists the txids that Forget may drop: DONE, and leases ended.
func (f *FSM) Finished() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	for t := range f.txns.All() {
		if t.finished() {
			out = append(out, t.id)
		}
	}
	sort.Strings(out)
	return out
}

// AppliedIndex is the index of the last entry applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Counts summarises the state.
type Counts struct {
	Txns, Preparing, Undelivered, Leases, Shards int
}

// Counts returns the sizes of the state. It reads the unfinished txns only (the open
// index), so a scrape costs what is in flight, not every retained txn.
func (f *FSM) Counts() Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c := Counts{Txns: f.txns.Len(), Leases: f.leases.Len(), Shards: len(f.shards)}
	for id := range f.open {
		switch st := f.txns.Get(id).State(); {
		case st == smv1.TxnState_TXN_STATE_PREPARING:
			c.Preparing++
		case twophase.Decided(st) && st != smv1.TxnState_TXN_STATE_DONE:
			c.Undelivered++
		}
	}
	return c
}

// InDoubtByShard counts, per shard, the decided transactions that shard has not yet
// acknowledged: the shard holds them prepared (in doubt) until the decision reaches
// it. Registered shards with none are present with 0.
func (f *FSM) InDoubtByShard() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]int, len(f.shards))
	for id := range f.shards {
		out[id] = 0
	}
	for id := range f.open {
		t := f.txns.Get(id)
		if !twophase.Decided(t.State()) {
			continue
		}
		for _, s := range t.shardIDs() {
			if !t.isAcked(s) {
				out[s]++
			}
		}
	}
	return out
}
