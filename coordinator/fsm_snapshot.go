package coordinator

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/ptrindex"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Snapshots. Snapshot runs on Raft's FSM goroutine and must be quick: it copies one
// pointer per transaction and per lease holder, freezes the lease table and bumps the
// FSM's generation, so that until the snapshot is released every change copies the
// txn or lease entry it touches instead of changing it in place (writable). Persist
// then streams the frozen state from Raft's snapshot goroutine while the FSM goes on
// applying, through a 1 MiB buffer, in the format of fsm_snapcodec.go, and the sink's
// Close makes it durable (one fsync). Restore streams it back the same way and swaps
// the decoded state in whole.

// snapBufSize is the buffer between the FSM's snapshot stream and the sink or source.
const snapBufSize = 1 << 20

// Snapshot captures the state; Persist writes it. The bytes are deterministic, so equal
// states snapshot to equal bytes on every replica.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.frozen++
	s := &fsmSnapshot{f: f, format: f.format, applied: f.applied, txns: make([]*txn, 0, f.txns.Len()), leases: f.leases.Freeze(),
		shards: make([]*smv1.ShardInfo, 0, len(f.shards))}
	for t := range f.txns.All() {
		s.txns = append(s.txns, t)
	}
	for _, sh := range f.shards {
		s.shards = append(s.shards, proto.Clone(sh).(*smv1.ShardInfo))
	}
	return s, nil
}

// fsmSnapshot is the state at one point, as Snapshot froze it.
type fsmSnapshot struct {
	f        *FSM
	format   uint16
	applied  uint64
	txns     []*txn // frozen: none of them changes while the snapshot is not released
	leases   *lease.Frozen
	shards   []*smv1.ShardInfo // copies
	released bool
}

// Persist writes the snapshot to sink and closes it (Raft's file sink fsyncs on Close),
// or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, snapBufSize)
	var err error
	if s.format == 1 {
		err = s.writeV1(w)
	} else {
		err = s.writeTo(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("coordinator: persist snapshot: %w", err)
	}
	return sink.Close()
}

// SnapshotFormats are the FSM snapshot formats this build writes: 2, its own, and 1,
// the protobuf FSMState of the builds before it, which cannot read 2.
var SnapshotFormats = []uint16{2, 1}

// SetSnapshotFormat chooses the format of the snapshots the FSM takes from now on (2 by
// default). Format 1 is for a rolling upgrade from a build before format 2: Raft sends
// a lagging follower the leader's latest snapshot, which an older follower can read
// only in format 1. It is slower and needs more memory (every record rebuilt, the
// leases sorted by player), so switch back once every node runs this build. Restore
// reads either.
func (f *FSM) SetSnapshotFormat(v uint16) error {
	if !slices.Contains(SnapshotFormats, v) {
		return fmt.Errorf("coordinator: snapshot format %d (this build writes %v)", v, SnapshotFormats)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.format = v
	return nil
}

// Release ends the copy on write the snapshot needed.
func (s *fsmSnapshot) Release() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.released {
		s.released = true
		s.f.frozen--
		s.leases.Thaw()
	}
}

// Restore replaces the state with a snapshot. It decodes the whole snapshot before it
// changes anything: a snapshot that does not decode leaves the state as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.RLock()
	gen := f.gen // only Snapshot changes it, and Raft never runs it during Restore
	f.mu.RUnlock()
	st, err := decodeState(bufio.NewReaderSize(rc, snapBufSize), gen)
	if err != nil {
		return fmt.Errorf("coordinator: restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txns, f.byProposal, f.leases, f.shards, f.applied, f.intern = st.txns, st.byProposal, st.leases, st.shards, st.applied, st.intern
	f.refreshBatchShards()
	f.open = openOf(st.txns)
	f.emit(st.applied, EventRestored, "", nil, nil)
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	return nil
}

// fsmState is a whole state decoded from a snapshot, not yet in an FSM.
type fsmState struct {
	txns       *ptrindex.Index[txn]
	byProposal *ptrindex.Index[txn]
	leases     *lease.Table
	shards     map[string]*smv1.ShardInfo
	intern     interner
	applied    uint64
}

// summary describes the decoded state as SnapshotSummary does.
func (st *fsmState) summary(meta *raft.SnapshotMeta) SnapshotSummary {
	s := SnapshotSummary{Index: meta.Index, Term: meta.Term, Size: meta.Size, AppliedIndex: st.applied,
		MaxToken: st.leases.MaxToken(), Txns: st.txns.Len(), Leases: st.leases.Len(), Shards: len(st.shards)}
	for t := range st.txns.All() {
		s.countTxn(t.State())
	}
	return s
}

// State returns a deep copy of the whole state, sorted (transactions by txid, leases
// by player, shards by id): what a snapshot holds, as the FSMState of the snapshot
// format's first version. It rebuilds every record: for tests and the admin API, not
// for anything that runs often.
func (f *FSM) State() *smv1.FSMState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return stateOf(f.txns, f.leases, f.shards, f.applied)
}

func stateOf(txns *ptrindex.Index[txn], leases *lease.Table, shards map[string]*smv1.ShardInfo, applied uint64) *smv1.FSMState {
	st := &smv1.FSMState{AppliedIndex: applied, MaxToken: leases.MaxToken(), Txns: make([]*smv1.TxnRecord, 0, txns.Len())}
	for t := range txns.All() {
		st.Txns = append(st.Txns, t.record(nil))
	}
	slices.SortFunc(st.Txns, func(a, b *smv1.TxnRecord) int { return strings.Compare(a.Txid, b.Txid) })
	for _, l := range leases.Snapshot() {
		st.Leases = append(st.Leases, leaseToProto(l))
	}
	for _, s := range shards {
		st.Shards = append(st.Shards, proto.Clone(s).(*smv1.ShardInfo))
	}
	slices.SortFunc(st.Shards, func(a, b *smv1.ShardInfo) int { return strings.Compare(a.ShardId, b.ShardId) })
	return st
}

func leaseToProto(l lease.Lease) *smv1.LeaseRecord {
	st := smv1.LeaseState_LEASE_STATE_RESERVED
	if l.State == lease.Active {
		st = smv1.LeaseState_LEASE_STATE_ACTIVE
	}
	return &smv1.LeaseRecord{PlayerId: l.Player, Txid: l.TxID, Token: l.Token, State: st,
		TtlMs: l.TTL.Milliseconds(), RenewSeq: l.RenewSeq}
}

func leaseFromProto(l *smv1.LeaseRecord) lease.Lease {
	st := lease.Reserved
	if l.GetState() == smv1.LeaseState_LEASE_STATE_ACTIVE {
		st = lease.Active
	}
	return lease.Lease{Player: l.GetPlayerId(), TxID: l.GetTxid(), Token: l.GetToken(), State: st,
		TTL: time.Duration(l.GetTtlMs()) * time.Millisecond, RenewSeq: l.GetRenewSeq()}
}
