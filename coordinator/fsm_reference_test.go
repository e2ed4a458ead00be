package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// refFSM is the FSM as it was before it held transactions compactly (protobuf
// TxnRecords, whole-state protobuf snapshots: commit 3ecb411, and 4d2e629's EventDone
// of begin-time aborts), kept verbatim but for names as the reference
// TestFSMAgreesWithReference holds the FSM to: every result, event, decision and read
// must be the same. When the FSM's behaviour changes on purpose, change it here too,
// or delete the reference. Its read methods are in fsm_reference_read_test.go.
type refFSM struct {
	mu         sync.RWMutex
	txns       map[string]*smv1.TxnRecord
	byProposal map[string]string
	leases     *lease.Table
	shards     map[string]*smv1.ShardInfo
	applied    uint64
	appliedCh  chan struct{} // closed and replaced whenever applied moves

	obs      Observer
	onDecide func(*smv1.Decision)
}

// NewFSM returns an empty FSM. obs and onDecide may be nil; onDecide is called with
// every decision as it is applied (on every replica), with the FSM lock held. The
// observer first sees an EventRestored at index 0: a new FSM is the empty state, and
// Raft will replay the log (or restore a snapshot) into it.
func newRefFSM(obs Observer, onDecide func(*smv1.Decision)) *refFSM {
	if obs != nil {
		obs.Observe(Event{Kind: EventRestored})
	}
	return &refFSM{
		txns: make(map[string]*smv1.TxnRecord), byProposal: make(map[string]string),
		leases: lease.NewTable(), shards: make(map[string]*smv1.ShardInfo),
		appliedCh: make(chan struct{}), obs: obs, onDecide: onDecide,
	}
}

// Apply applies one log entry. Its response is []CommandResult, one per command, or an
// error if the entry does not decode (then nothing changes, on every replica alike).
func (f *refFSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies consecutive log entries under one lock acquisition.
func (f *refFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range logs {
		if l.Index > f.applied {
			f.applied = l.Index
		}
		if l.Type != raft.LogCommand {
			continue
		}
		cmds, err := DecodeBatch(l.Data)
		if err != nil {
			out[i] = err
			continue
		}
		res := make([]CommandResult, len(cmds))
		for pos, c := range cmds {
			res[pos] = f.apply(l.Index, pos, c)
		}
		out[i] = res
	}
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	return out
}

// waitApplied blocks until the FSM has applied index idx.
func (f *refFSM) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.RLock()
		applied, ch := f.applied, f.appliedCh
		f.mu.RUnlock()
		if applied >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *refFSM) apply(index uint64, pos int, c *smv1.Command) CommandResult {
	switch op := c.GetOp().(type) {
	case *smv1.Command_Begin:
		return f.begin(index, pos, op.Begin)
	case *smv1.Command_Decide:
		return f.decide(index, op.Decide)
	case *smv1.Command_Acked:
		return f.acked(index, op.Acked)
	case *smv1.Command_Renew:
		return f.renew(index, op.Renew.GetTxid())
	case *smv1.Command_Release:
		return f.release(index, op.Release.GetTxid())
	case *smv1.Command_Expire:
		return f.expire(index, op.Expire)
	case *smv1.Command_Forget:
		return f.forget(op.Forget.GetTxids())
	case *smv1.Command_RegisterShard:
		return f.registerShard(op.RegisterShard.GetShard())
	case *smv1.Command_SetShardState:
		return f.setShardState(op.SetShardState)
	}
	return CommandResult{Err: &InvalidError{Field: "command", Reason: "unknown or empty command"}}
}

func (f *refFSM) emit(index uint64, kind EventKind, txid string, leases []lease.Lease, d *smv1.Decision) {
	if f.obs != nil {
		f.obs.Observe(Event{Index: index, Kind: kind, TxID: txid, Leases: leases, Decision: d})
	}
}

func (f *refFSM) result(rec *smv1.TxnRecord) CommandResult {
	return CommandResult{Txn: proto.Clone(rec).(*smv1.TxnRecord)}
}

func (f *refFSM) begin(index uint64, pos int, b *smv1.Begin) CommandResult {
	p := b.GetProposal()
	if p.GetProposalId() == "" {
		return CommandResult{Err: &InvalidError{Field: "proposal_id", Reason: "empty"}}
	}
	if pos >= MaxBatch {
		return CommandResult{Err: &InvalidError{Field: "batch", Reason: "too many commands in one entry"}}
	}
	if txid, ok := f.byProposal[p.GetProposalId()]; ok {
		return f.result(f.txns[txid])
	}
	txid, token := TxID(index, pos), Token(index, pos)
	rec := &smv1.TxnRecord{
		Txid: txid, Proposal: p, BeginIndex: index, Token: token, Shards: refProposalShards(p), Traceparent: b.GetTraceparent(),
		Decision: &smv1.Decision{Txid: txid, ProposalId: p.GetProposalId(),
			PolicyRevision: b.GetVerdict().GetRevision(), CreatedUnixMs: b.GetWallUnixMs()},
	}
	f.txns[txid] = rec
	f.byProposal[p.GetProposalId()] = txid
	abort := func(reason smv1.Reason, msg string, details []*smv1.PlayerDetail) CommandResult {
		// Nothing was prepared anywhere, so there is nothing to deliver: straight to DONE.
		rec.State = smv1.TxnState_TXN_STATE_DONE
		d := rec.Decision
		d.Outcome, d.Reason, d.Message, d.Players = smv1.Outcome_OUTCOME_ABORTED, reason, msg, details
		d.Denials, d.DecidedUnixMs = b.GetVerdict().GetDenials(), b.GetWallUnixMs()
		f.decided(index, rec)
		f.emit(index, EventDone, txid, nil, nil)
		return CommandResult{Txn: proto.Clone(rec).(*smv1.TxnRecord), Created: true}
	}
	if v := b.GetVerdict(); v != nil && !v.GetAllow() {
		return abort(smv1.Reason_REASON_POLICY_DENIED, "denied by policy", nil)
	}
	for _, s := range rec.Shards {
		info, ok := f.shards[s]
		if !ok || info.GetState() != smv1.ShardState_SHARD_STATE_ACTIVE {
			return abort(smv1.Reason_REASON_INVALID, fmt.Sprintf("shard %q is not registered and active", s), nil)
		}
	}
	players := refProposalPlayers(p)
	ids := make([]string, len(players))
	for i, pl := range players {
		ids[i] = pl.GetPlayerId()
	}
	granted, err := f.leases.Grant(txid, ids, token, time.Duration(p.GetMatchTtlMs())*time.Millisecond)
	if err != nil {
		var le *lease.LeasedError
		if errors.As(err, &le) {
			var details []*smv1.PlayerDetail
			for _, pl := range players {
				if holder, busy := le.Holders[pl.GetPlayerId()]; busy {
					details = append(details, &smv1.PlayerDetail{PlayerId: pl.GetPlayerId(), ShardId: pl.GetShardId(),
						Code: "LEASED", HolderTxid: holder, Message: "player is in another match"})
				}
			}
			return abort(smv1.Reason_REASON_PLAYER_LEASED, le.Error(), details)
		}
		return abort(smv1.Reason_REASON_INVALID, err.Error(), nil)
	}
	rec.State = smv1.TxnState_TXN_STATE_PREPARING
	for _, pl := range players {
		rec.Decision.Players = append(rec.Decision.Players, &smv1.PlayerDetail{
			PlayerId: pl.GetPlayerId(), ShardId: pl.GetShardId(), FencingToken: token})
	}
	f.emit(index, EventLeaseGranted, txid, granted, nil)
	return CommandResult{Txn: proto.Clone(rec).(*smv1.TxnRecord), Created: true}
}

func (f *refFSM) decided(index uint64, rec *smv1.TxnRecord) {
	if f.obs != nil || f.onDecide != nil {
		d := proto.Clone(rec.Decision).(*smv1.Decision)
		f.emit(index, EventDecided, rec.Txid, nil, d)
		if f.onDecide != nil {
			f.onDecide(d)
		}
	}
}

func (f *refFSM) decide(index uint64, d *smv1.Decide) CommandResult {
	rec, ok := f.txns[d.GetTxid()]
	if !ok {
		return CommandResult{Err: fmt.Errorf("%w: txn %q", ErrNotFound, d.GetTxid())}
	}
	ev := twophase.EventDecideAbort
	switch d.GetOutcome() {
	case smv1.Outcome_OUTCOME_COMMITTED:
		ev = twophase.EventDecideCommit
	case smv1.Outcome_OUTCOME_ABORTED:
	default:
		return CommandResult{Err: &InvalidError{Field: "outcome", Reason: d.GetOutcome().String()}}
	}
	next, err := twophase.Transition(rec.GetState(), ev)
	if errors.Is(err, twophase.ErrAlreadyDecided) {
		return f.result(rec) // the first decision stands
	}
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	rec.State = next
	dec := rec.Decision
	dec.Outcome, dec.Reason, dec.Message, dec.DecidedUnixMs = d.GetOutcome(), d.GetReason(), d.GetMessage(), d.GetWallUnixMs()
	for _, det := range d.GetDetails() {
		for _, p := range dec.Players {
			if p.GetPlayerId() == det.GetPlayerId() {
				p.Code, p.Message = det.GetCode(), det.GetMessage()
			}
		}
	}
	if ev == twophase.EventDecideCommit {
		if err := f.leases.Activate(rec.Txid); err == nil {
			f.emit(index, EventLeaseActivated, rec.Txid, f.leases.TxnLeases(rec.Txid), nil)
		}
	} else if freed, err := f.leases.Release(rec.Txid); err == nil {
		f.emit(index, EventLeaseFreed, rec.Txid, freed, nil)
	}
	f.decided(index, rec)
	return f.result(rec)
}

func (f *refFSM) acked(index uint64, a *smv1.Acked) CommandResult {
	rec, ok := f.txns[a.GetTxid()]
	if !ok {
		return CommandResult{Err: fmt.Errorf("%w: txn %q", ErrNotFound, a.GetTxid())}
	}
	if !twophase.Decided(rec.GetState()) {
		return CommandResult{Err: fmt.Errorf("%w: ack for undecided txn %q", ErrConflict, rec.Txid)}
	}
	if _, member := slices.BinarySearch(rec.Shards, a.GetShardId()); !member {
		return CommandResult{Err: &InvalidError{Field: "shard_id", Reason: fmt.Sprintf("%q is not in txn %s", a.GetShardId(), rec.Txid)}}
	}
	if i, dup := slices.BinarySearch(rec.Acked, a.GetShardId()); !dup {
		rec.Acked = slices.Insert(rec.Acked, i, a.GetShardId())
	}
	if len(rec.Acked) == len(rec.Shards) && rec.State != smv1.TxnState_TXN_STATE_DONE {
		rec.State, _ = twophase.Transition(rec.State, twophase.EventAllAcked)
		f.emit(index, EventDone, rec.Txid, nil, nil)
	}
	return f.result(rec)
}

// liveMatch returns a committed txn whose leases are still held.
func (f *refFSM) liveMatch(txid string) (*smv1.TxnRecord, error) {
	rec, ok := f.txns[txid]
	if !ok {
		return nil, fmt.Errorf("%w: txn %q", ErrNotFound, txid)
	}
	if rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		return nil, fmt.Errorf("%w: txn %s is %s, not a committed match", ErrConflict, txid, rec.GetState())
	}
	if rec.GetLeaseEnd() != "" {
		return nil, fmt.Errorf("%w: match %s already %s", ErrConflict, txid, rec.GetLeaseEnd())
	}
	return rec, nil
}

func (f *refFSM) renew(index uint64, txid string) CommandResult {
	rec, err := f.liveMatch(txid)
	if err != nil {
		return CommandResult{Err: err}
	}
	if _, err := f.leases.Renew(txid); err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	f.emit(index, EventLeaseRenewed, txid, f.leases.TxnLeases(txid), nil)
	return f.result(rec)
}

func (f *refFSM) release(index uint64, txid string) CommandResult {
	rec, err := f.liveMatch(txid)
	if err != nil {
		return CommandResult{Err: err}
	}
	gone, err := f.leases.Release(txid)
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	rec.LeaseEnd = "released"
	f.emit(index, EventLeaseReleased, txid, gone, nil)
	return f.result(rec)
}

func (f *refFSM) expire(index uint64, e *smv1.Expire) CommandResult {
	rec, err := f.liveMatch(e.GetTxid())
	if err != nil {
		return CommandResult{Err: err}
	}
	gone, expired, err := f.leases.Expire(e.GetTxid(), e.GetRenewSeq())
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	if !expired {
		return f.result(rec) // a renew came in between: the leader's measurement is stale
	}
	rec.LeaseEnd = "expired"
	f.emit(index, EventLeaseExpired, e.GetTxid(), gone, nil)
	r := f.result(rec)
	r.Expired = true
	return r
}

// forget drops finished transactions: DONE, and for matches, leases ended.
func (f *refFSM) forget(txids []string) CommandResult {
	for _, txid := range txids {
		rec, ok := f.txns[txid]
		if !ok || rec.State != smv1.TxnState_TXN_STATE_DONE {
			continue
		}
		if rec.GetDecision().GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED && rec.GetLeaseEnd() == "" {
			continue
		}
		delete(f.txns, txid)
		if f.byProposal[rec.GetProposal().GetProposalId()] == txid {
			delete(f.byProposal, rec.GetProposal().GetProposalId())
		}
	}
	return CommandResult{}
}

func (f *refFSM) registerShard(s *smv1.ShardInfo) CommandResult {
	if s.GetShardId() == "" {
		return CommandResult{Err: &InvalidError{Field: "shard_id", Reason: "empty"}}
	}
	s = proto.Clone(s).(*smv1.ShardInfo)
	if old, ok := f.shards[s.ShardId]; ok {
		s.State = old.State // registration never overrides an operator's drain or disable
	} else {
		s.State = smv1.ShardState_SHARD_STATE_ACTIVE
	}
	f.shards[s.ShardId] = s
	return CommandResult{}
}

func (f *refFSM) setShardState(c *smv1.SetShardState) CommandResult {
	s, ok := f.shards[c.GetShardId()]
	if !ok {
		return CommandResult{Err: fmt.Errorf("%w: shard %q", ErrNotFound, c.GetShardId())}
	}
	if c.GetState() == smv1.ShardState_SHARD_STATE_UNSPECIFIED {
		return CommandResult{Err: &InvalidError{Field: "state", Reason: "unspecified"}}
	}
	s.State = c.GetState()
	return CommandResult{}
}

// proposalPlayers lists the proposal's players in team order.
func refProposalPlayers(p *smv1.Proposal) []*smv1.Player {
	var out []*smv1.Player
	for _, t := range p.GetTeams() {
		out = append(out, t.GetPlayers()...)
	}
	return out
}

// proposalShards lists the distinct shards of the proposal, sorted.
func refProposalShards(p *smv1.Proposal) []string {
	var out []string
	for _, pl := range refProposalPlayers(p) {
		out = append(out, pl.GetShardId())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Snapshot captures the state; Persist writes it. The bytes are deterministic, so equal
// states snapshot to equal bytes on every replica.
func (f *refFSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f.State())
	if err != nil {
		return nil, err
	}
	return refSnapshotBytes(b), nil
}

// Restore replaces the state with a snapshot.
func (f *refFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("coordinator: read snapshot: %w", err)
	}
	var st smv1.FSMState
	if err := proto.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("coordinator: decode snapshot: %w", err)
	}
	return f.load(&st)
}

func (f *refFSM) load(st *smv1.FSMState) error {
	leases := make([]lease.Lease, 0, len(st.GetLeases()))
	for _, l := range st.GetLeases() {
		leases = append(leases, refLeaseFromProto(l))
	}
	table, err := lease.RestoreTable(leases, st.GetMaxToken())
	if err != nil {
		return fmt.Errorf("coordinator: restore leases: %w", err)
	}
	txns := make(map[string]*smv1.TxnRecord, len(st.GetTxns()))
	byProposal := make(map[string]string, len(st.GetTxns()))
	for _, t := range st.GetTxns() {
		txns[t.Txid] = t
		byProposal[t.GetProposal().GetProposalId()] = t.Txid
	}
	shards := make(map[string]*smv1.ShardInfo, len(st.GetShards()))
	for _, s := range st.GetShards() {
		shards[s.ShardId] = s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txns, f.byProposal, f.leases, f.shards, f.applied = txns, byProposal, table, shards, st.GetAppliedIndex()
	f.emit(st.GetAppliedIndex(), EventRestored, "", nil, nil)
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	return nil
}

// State returns a deep copy of the whole state, sorted, as it would be snapshotted.
func (f *refFSM) State() *smv1.FSMState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := &smv1.FSMState{AppliedIndex: f.applied, MaxToken: f.leases.MaxToken()}
	for _, t := range f.txns {
		st.Txns = append(st.Txns, proto.Clone(t).(*smv1.TxnRecord))
	}
	sort.Slice(st.Txns, func(i, j int) bool { return st.Txns[i].Txid < st.Txns[j].Txid })
	for _, l := range f.leases.Snapshot() {
		st.Leases = append(st.Leases, refLeaseToProto(l))
	}
	for _, s := range f.shards {
		st.Shards = append(st.Shards, proto.Clone(s).(*smv1.ShardInfo))
	}
	sort.Slice(st.Shards, func(i, j int) bool { return st.Shards[i].ShardId < st.Shards[j].ShardId })
	return st
}

type refSnapshotBytes []byte

func (s refSnapshotBytes) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s refSnapshotBytes) Release() {}

func refLeaseToProto(l lease.Lease) *smv1.LeaseRecord {
	st := smv1.LeaseState_LEASE_STATE_RESERVED
	if l.State == lease.Active {
		st = smv1.LeaseState_LEASE_STATE_ACTIVE
	}
	return &smv1.LeaseRecord{PlayerId: l.Player, Txid: l.TxID, Token: l.Token, State: st,
		TtlMs: l.TTL.Milliseconds(), RenewSeq: l.RenewSeq}
}

func refLeaseFromProto(l *smv1.LeaseRecord) lease.Lease {
	st := lease.Reserved
	if l.GetState() == smv1.LeaseState_LEASE_STATE_ACTIVE {
		st = lease.Active
	}
	return lease.Lease{Player: l.GetPlayerId(), TxID: l.GetTxid(), Token: l.GetToken(), State: st,
		TTL: time.Duration(l.GetTtlMs()) * time.Millisecond, RenewSeq: l.GetRenewSeq()}
}

// Read-side accessors. They return copies the caller owns.
