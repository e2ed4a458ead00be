package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/ptrindex"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// MaxBatch is the most commands one log entry may carry: the command's position in the
// entry is the low 16 bits of the fencing tokens it grants.
const MaxBatch = 1 << 16

// Token returns the fencing token granted by the command at position pos of the log
// entry at index. Tokens are the Raft index (high bits) and the position inside a batched
// entry (low 16 bits), so they strictly increase with log order across every leader.
func Token(index uint64, pos int) uint64 { return index<<16 | uint64(pos) }

// TxID names the transaction created by the Begin at position pos of entry index.
func TxID(index uint64, pos int) string { return fmt.Sprintf("tx-%d-%d", index, pos) }

// CommandResult is what applying one command produced. Txn is a copy the caller owns.
type CommandResult struct {
	Txn *smv1.TxnRecord
	// Created is true when a Begin made a new transaction (false: the proposal id was
	// already known and Txn is the first transaction).
	Created bool
	// Expired is true when an Expire took the leases away.
	Expired bool
	Err     error
}

// EventKind says what changed.
type EventKind uint8

// Events the FSM reports to its Observer, in log order.
const (
	EventLeaseGranted EventKind = iota + 1
	EventLeaseActivated
	EventLeaseRenewed
	EventLeaseReleased
	EventLeaseExpired
	EventLeaseFreed // leases dropped because the txn aborted
	EventDecided
	EventDone
	// EventRestored marks a snapshot restore: the state jumped to Index.
	EventRestored
)

var eventNames = map[EventKind]string{
	EventLeaseGranted: "granted", EventLeaseActivated: "activated", EventLeaseRenewed: "renewed",
	EventLeaseReleased: "released", EventLeaseExpired: "expired", EventLeaseFreed: "freed",
	EventDecided: "decided", EventDone: "done", EventRestored: "restored",
}

func (k EventKind) String() string { return eventNames[k] }

// Event is one change the FSM applied.
type Event struct {
	Index    uint64
	Kind     EventKind
	TxID     string
	Leases   []lease.Lease
	Decision *smv1.Decision
}

// Observer sees every change the FSM applies, synchronously and in log order, with the
// FSM lock held: it must be quick and must not call the FSM.
type Observer interface{ Observe(Event) }

// FSM is the coordinator's replicated state machine: transactions, the lease table and
// the shard registry. It implements raft.FSM and raft.BatchingFSM.
type FSM struct {
	mu sync.RWMutex
	// txns indexes the txns by txid; byProposal by proposal id, the txn created for it
	// (resolve it by id: see byPID). ptrindex costs about half a Go map's memory.
	txns       *ptrindex.Index[txn]
	byProposal *ptrindex.Index[txn]
	// open holds the txids of the txns not DONE (PREPARING, or decided and not acked by
	// every shard): what a leader drives, the listings of unfinished txns and the
	// per-scrape counts read, without a scan of every retained txn.
	open   map[string]struct{}
	leases *lease.Table
	shards map[string]*smv1.ShardInfo
	// batchShards are the shards registered with command_batches, copied on every
	// registry change so that the transport reads it on every send without f.mu.
	batchShards atomic.Pointer[map[string]bool]
	intern      interner
	applied     uint64
	appliedCh   chan struct{} // closed and replaced whenever applied moves
	// gen counts snapshots taken; frozen counts those not yet released. While frozen >
	// 0, a txn of an older generation is copied before it changes (writable), so the
	// snapshots can read theirs while the FSM goes on applying.
	gen    uint32
	frozen int
	// format is the snapshot format Persist writes (SetSnapshotFormat).
	format uint16

	obs      Observer
	onDecide func(*smv1.Decision)
}

// NewFSM returns an empty FSM. obs and onDecide may be nil; onDecide is called with
// every decision as it is applied (on every replica), with the FSM lock held. The
// observer first sees an EventRestored at index 0: a new FSM is the empty state, and
// Raft will replay the log (or restore a snapshot) into it.
func NewFSM(obs Observer, onDecide func(*smv1.Decision)) *FSM {
	if obs != nil {
		obs.Observe(Event{Kind: EventRestored})
	}
	return &FSM{
		txns: newTxnIndex(0), byProposal: newPIDIndex(0), open: make(map[string]struct{}),
		leases: lease.NewTable(), shards: make(map[string]*smv1.ShardInfo),
		appliedCh: make(chan struct{}), obs: obs, onDecide: onDecide,
	}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one log entry. Its response is []CommandResult, one per command, or an
// error if the entry does not decode (then nothing changes, on every replica alike).
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies consecutive log entries under one lock acquisition.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
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
func (f *FSM) waitApplied(ctx context.Context, idx uint64) error {
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

func (f *FSM) apply(index uint64, pos int, c *smv1.Command) CommandResult {
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

func (f *FSM) emit(index uint64, kind EventKind, txid string, leases []lease.Lease, d *smv1.Decision) {
	if f.obs != nil {
		f.obs.Observe(Event{Index: index, Kind: kind, TxID: txid, Leases: leases, Decision: d})
	}
}

// result reports t in a new record.
func (f *FSM) result(t *txn) CommandResult { return CommandResult{Txn: t.record(nil)} }

// ackedOutcome is the result of an Acked: outcome with the decision's summary.
func (f *FSM) ackedOutcome(t *txn) CommandResult {
	return CommandResult{Txn: &smv1.TxnRecord{Txid: t.id, State: t.State(), Decision: t.decisionSummary(), BeginIndex: t.beginIndex()}}
}

// outcome is the result of a Decide (an Acked's is ackedOutcome): the txn's id, state, decision and
// Raft index, all the driver reads of it. Every replica builds every result and only
// the leader's are read, so the full record (proposal and all) is not built for the
// two commands every match logs most.
func (f *FSM) outcome(t *txn) CommandResult {
	return CommandResult{Txn: &smv1.TxnRecord{Txid: t.id, State: t.State(), Decision: t.decision(), BeginIndex: t.beginIndex()}}
}

// writable returns t ready to change: t itself, or while a snapshot may hold t, a copy
// that replaces it.
func (f *FSM) writable(t *txn) *txn {
	if f.frozen == 0 || t.gen == f.gen {
		return t
	}
	c := *t
	c.gen = f.gen
	if t.x != nil {
		c.x = t.x.clone()
	}
	f.txns.Swap(c.id, t, &c)
	f.byProposal.Swap(c.pid(), t, &c)
	return &c
}

func newTxnIndex(hint int) *ptrindex.Index[txn] {
	return ptrindex.New(func(t *txn, id string) bool { return t.id == id }, hint)
}

func newPIDIndex(hint int) *ptrindex.Index[txn] {
	return ptrindex.New(func(t *txn, pid string) bool { return t.pid() == pid }, hint)
}

// byPID returns the txn of proposal id pid. Like the txid the map held before txns
// were compact, the entry names a txn by its id.
func (f *FSM) byPID(pid string) (*txn, bool) {
	b := f.byProposal.Get(pid)
	if b == nil {
		return nil, false
	}
	t := f.txns.Get(b.id)
	return t, t != nil
}

func (f *FSM) begin(index uint64, pos int, b *smv1.Begin) CommandResult {
	p := b.GetProposal()
	if p.GetProposalId() == "" {
		return CommandResult{Err: &InvalidError{Field: "proposal_id", Reason: "empty"}}
	}
	if pos >= MaxBatch {
		return CommandResult{Err: &InvalidError{Field: "batch", Reason: "too many commands in one entry"}}
	}
	if t, ok := f.byPID(p.GetProposalId()); ok {
		return f.result(t)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return CommandResult{Err: &InvalidError{Field: "proposal", Reason: err.Error()}}
	}
	txid, token := TxID(index, pos), Token(index, pos)
	t := &txn{id: txid, prop: string(raw), token: token, trace: b.GetTraceparent(), gen: f.gen,
		revision: f.intern.str(b.GetVerdict().GetRevision()), created: b.GetWallUnixMs()}
	if t.token>>16 != index {
		x := t.rare()
		x.hasBeginIndex, x.beginIndex = true, index
	}
	t.shardSet = f.intern.set(proposalShards(p))
	if len(t.shardIDs()) > 64 {
		t.rare().ackList = true
	}
	f.txns.Put(txid, t)
	f.byProposal.Put(t.pid(), t)
	abort := func(reason smv1.Reason, msg string, details []*smv1.PlayerDetail) CommandResult {
		// Nothing was prepared anywhere, so there is nothing to deliver: straight to DONE.
		if denials := b.GetVerdict().GetDenials(); len(details) > 0 || len(denials) > 0 {
			t.rare().dec = &smv1.Decision{Txid: txid, ProposalId: p.GetProposalId(), Outcome: smv1.Outcome_OUTCOME_ABORTED,
				Reason: reason, Message: msg, Players: details, PolicyRevision: t.revision, Denials: denials,
				CreatedUnixMs: t.created, DecidedUnixMs: b.GetWallUnixMs()}
			t.revision, t.created = "", 0
			t.setEnums(smv1.TxnState_TXN_STATE_DONE, 0, 0)
		} else {
			t.setEnums(smv1.TxnState_TXN_STATE_DONE, smv1.Outcome_OUTCOME_ABORTED, reason)
			t.rare().message, t.decided = msg, b.GetWallUnixMs()
		}
		f.decided(index, t)
		f.emit(index, EventDone, txid, nil, nil)
		return CommandResult{Txn: t.record(p), Created: true}
	}
	if v := b.GetVerdict(); v != nil && !v.GetAllow() {
		return abort(smv1.Reason_REASON_POLICY_DENIED, "denied by policy", nil)
	}
	for _, s := range t.shardIDs() {
		info, ok := f.shards[s]
		if !ok || info.GetState() != smv1.ShardState_SHARD_STATE_ACTIVE {
			return abort(smv1.Reason_REASON_INVALID, fmt.Sprintf("shard %q is not registered and active", s), nil)
		}
	}
	// The lease table keeps the player ids: substrings of the proposal the txn keeps.
	var ids []string
	eachPlayer(t.prop, func(id, _ string) { ids = append(ids, id) })
	granted, err := f.leases.Grant(txid, ids, token, time.Duration(p.GetMatchTtlMs())*time.Millisecond)
	if err != nil {
		var le *lease.LeasedError
		if errors.As(err, &le) {
			var details []*smv1.PlayerDetail
			for _, pl := range proposalPlayers(p) {
				if holder, busy := le.Holders[pl.GetPlayerId()]; busy {
					details = append(details, &smv1.PlayerDetail{PlayerId: pl.GetPlayerId(), ShardId: pl.GetShardId(),
						Code: "LEASED", HolderTxid: holder, Message: "player is in another match"})
				}
			}
			return abort(smv1.Reason_REASON_PLAYER_LEASED, le.Error(), details)
		}
		return abort(smv1.Reason_REASON_INVALID, err.Error(), nil)
	}
	t.setState(smv1.TxnState_TXN_STATE_PREPARING)
	f.track(t)
	t.players = playersToken
	f.emit(index, EventLeaseGranted, txid, granted, nil)
	return CommandResult{Txn: t.record(p), Created: true}
}

// track files t under open, or takes it out, by its state.
func (f *FSM) track(t *txn) {
	if t.State() == smv1.TxnState_TXN_STATE_DONE {
		delete(f.open, t.id)
	} else {
		f.open[t.id] = struct{}{}
	}
}

// openOf indexes the txns of txns that are not DONE.
func openOf(txns *ptrindex.Index[txn]) map[string]struct{} {
	open := make(map[string]struct{})
	for t := range txns.All() {
		if t.State() != smv1.TxnState_TXN_STATE_DONE {
			open[t.id] = struct{}{}
		}
	}
	return open
}

func (f *FSM) decided(index uint64, t *txn) {
	if f.obs != nil || f.onDecide != nil {
		d := t.decision()
		f.emit(index, EventDecided, t.id, nil, d)
		if f.onDecide != nil {
			f.onDecide(d)
		}
	}
}

func (f *FSM) decide(index uint64, d *smv1.Decide) CommandResult {
	t := f.txns.Get(d.GetTxid())
	if t == nil {
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
	next, err := twophase.Transition(t.State(), ev)
	if errors.Is(err, twophase.ErrAlreadyDecided) {
		return f.outcome(t) // the first decision stands
	}
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	t = f.writable(t)
	if x := t.x; x == nil || x.dec == nil && !x.decNil {
		if len(d.GetDetails()) == 0 {
			t.setEnums(next, d.GetOutcome(), d.GetReason())
			t.decided = d.GetWallUnixMs()
			if d.GetMessage() != "" || t.message() != "" {
				t.rare().message = d.GetMessage()
			}
		} else {
			// Per-player codes: the decision no longer derives from the proposal.
			dec := t.decision()
			t.revision, t.created, t.decided, t.players = "", 0, 0, playersNone
			t.rare().message = ""
			t.x.dec = dec
		}
	} else if x.decNil {
		x.dec, x.decNil = &smv1.Decision{}, false
	}
	if t.x != nil && t.x.dec != nil {
		t.setEnums(next, 0, 0)
		dec := t.x.dec
		dec.Outcome, dec.Reason, dec.Message, dec.DecidedUnixMs = d.GetOutcome(), d.GetReason(), d.GetMessage(), d.GetWallUnixMs()
		for _, det := range d.GetDetails() {
			for _, p := range dec.Players {
				if p.GetPlayerId() == det.GetPlayerId() {
					p.Code, p.Message = det.GetCode(), det.GetMessage()
				}
			}
		}
	}
	if ev == twophase.EventDecideCommit {
		if err := f.leases.Activate(t.id); err == nil {
			f.emit(index, EventLeaseActivated, t.id, f.leases.TxnLeases(t.id), nil)
		}
	} else if freed, err := f.leases.Release(t.id); err == nil {
		f.emit(index, EventLeaseFreed, t.id, freed, nil)
	}
	f.track(t)
	f.decided(index, t)
	return f.outcome(t)
}

func (f *FSM) acked(index uint64, a *smv1.Acked) CommandResult {
	t := f.txns.Get(a.GetTxid())
	if t == nil {
		return CommandResult{Err: fmt.Errorf("%w: txn %q", ErrNotFound, a.GetTxid())}
	}
	if !twophase.Decided(t.State()) {
		return CommandResult{Err: fmt.Errorf("%w: ack for undecided txn %q", ErrConflict, t.id)}
	}
	i, member := slices.BinarySearch(t.shardIDs(), a.GetShardId())
	if !member {
		return CommandResult{Err: &InvalidError{Field: "shard_id", Reason: fmt.Sprintf("%q is not in txn %s", a.GetShardId(), t.id)}}
	}
	if !t.isAcked(a.GetShardId()) {
		t = f.writable(t)
		if t.x != nil && t.x.ackList {
			j, _ := slices.BinarySearch(t.x.acked, a.GetShardId())
			t.x.acked = slices.Insert(t.x.acked, j, t.shardIDs()[i])
		} else {
			t.acked |= 1 << i
		}
	}
	if t.ackedCount() == len(t.shardIDs()) && t.State() != smv1.TxnState_TXN_STATE_DONE {
		t = f.writable(t)
		next, _ := twophase.Transition(t.State(), twophase.EventAllAcked)
		t.setState(next)
		f.track(t)
		f.emit(index, EventDone, t.id, nil, nil)
	}
	return f.ackedOutcome(t)
}

// liveMatch returns a committed txn whose leases are still held.
func (f *FSM) liveMatch(txid string) (*txn, error) {
	t := f.txns.Get(txid)
	if t == nil {
		return nil, fmt.Errorf("%w: txn %q", ErrNotFound, txid)
	}
	if t.outcomeVal() != smv1.Outcome_OUTCOME_COMMITTED {
		return nil, fmt.Errorf("%w: txn %s is %s, not a committed match", ErrConflict, txid, t.State())
	}
	if end := t.leaseEndVal(); end != "" {
		return nil, fmt.Errorf("%w: match %s already %s", ErrConflict, txid, end)
	}
	return t, nil
}

func (f *FSM) renew(index uint64, txid string) CommandResult {
	t, err := f.liveMatch(txid)
	if err != nil {
		return CommandResult{Err: err}
	}
	if _, err := f.leases.Renew(txid); err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	f.emit(index, EventLeaseRenewed, txid, f.leases.TxnLeases(txid), nil)
	return f.result(t)
}

func (f *FSM) release(index uint64, txid string) CommandResult {
	t, err := f.liveMatch(txid)
	if err != nil {
		return CommandResult{Err: err}
	}
	gone, err := f.leases.Release(txid)
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	t = f.writable(t)
	t.setLeaseEnd("released")
	f.emit(index, EventLeaseReleased, txid, gone, nil)
	return f.result(t)
}

func (f *FSM) expire(index uint64, e *smv1.Expire) CommandResult {
	t, err := f.liveMatch(e.GetTxid())
	if err != nil {
		return CommandResult{Err: err}
	}
	gone, expired, err := f.leases.Expire(e.GetTxid(), e.GetRenewSeq())
	if err != nil {
		return CommandResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
	}
	if !expired {
		return f.result(t) // a renew came in between: the leader's measurement is stale
	}
	t = f.writable(t)
	t.setLeaseEnd("expired")
	f.emit(index, EventLeaseExpired, e.GetTxid(), gone, nil)
	r := f.result(t)
	r.Expired = true
	return r
}

// finished reports whether Forget may drop t: DONE, and for a match, leases ended.
func (t *txn) finished() bool {
	return t.State() == smv1.TxnState_TXN_STATE_DONE &&
		(t.outcomeVal() != smv1.Outcome_OUTCOME_COMMITTED || t.leaseEndVal() != "")
}

// forget drops finished transactions: DONE, and for matches, leases ended.
func (f *FSM) forget(txids []string) CommandResult {
	for _, txid := range txids {
		t := f.txns.Get(txid)
		if t == nil || !t.finished() {
			continue
		}
		f.txns.Delete(txid)
		delete(f.open, txid)
		if pid := t.pid(); f.byProposal.Get(pid) != nil && f.byProposal.Get(pid).id == txid {
			f.byProposal.Delete(pid)
		}
	}
	return CommandResult{}
}

func (f *FSM) registerShard(s *smv1.ShardInfo) CommandResult {
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
	f.refreshBatchShards()
	return CommandResult{}
}

// refreshBatchShards rebuilds batchShards from shards; the caller holds f.mu.
func (f *FSM) refreshBatchShards() {
	m := make(map[string]bool, len(f.shards))
	for id, s := range f.shards {
		if s.GetCommandBatches() {
			m[id] = true
		}
	}
	f.batchShards.Store(&m)
}

func (f *FSM) setShardState(c *smv1.SetShardState) CommandResult {
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
func proposalPlayers(p *smv1.Proposal) []*smv1.Player {
	var out []*smv1.Player
	for _, t := range p.GetTeams() {
		out = append(out, t.GetPlayers()...)
	}
	return out
}

// proposalShards lists the distinct shards of the proposal, sorted.
func proposalShards(p *smv1.Proposal) []string {
	var out []string
	for _, pl := range proposalPlayers(p) {
		out = append(out, pl.GetShardId())
	}
	sort.Strings(out)
	return slices.Compact(out)
}
