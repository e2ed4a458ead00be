package coordinator

import (
	"fmt"
	"math/bits"
	"slices"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The FSM holds each transaction as a txn, not as a *smv1.TxnRecord: a record's
// protobuf object graph (the proposal's teams, players, attributes and metadata map,
// the decision's player details, every message's internal state) costs ~2 KiB for a
// 1v1 match, and the FSM must hold a million leases (issue 13). A txn keeps the
// proposal as its protobuf bytes, derives what it can (the decision's txid, proposal
// id and players, the acked shards as a bitset over the shard list), interns what
// repeats (shard ids, shard lists, policy revisions) and moves what is rare (abort
// details, denials, messages, anything a hand-made snapshot holds that the FSM itself
// never writes) to a txnRare. record() rebuilds the exact TxnRecord; reads are rare
// (Status, the admin API, State) and pay for it.

// txn is one transaction. A txn that an outstanding snapshot may hold (gen older than
// FSM.gen while FSM.frozen > 0) never changes: FSM.writable copies it first.
type txn struct {
	id string
	// prop is the proposal, protobuf-encoded (deterministically when the FSM encoded
	// it). Proposal id and player ids handed to the lease table are substrings of it.
	prop     string
	trace    string // Traceparent
	revision string // Decision.PolicyRevision (inline decision)
	// shardSet is Shards (nil: none), interned: shared between txns, never modify it.
	shardSet *[]string
	token    uint64
	created  int64  // Decision.CreatedUnixMs (inline decision)
	decided  int64  // Decision.DecidedUnixMs (inline decision)
	acked    uint64 // bit i set: shards[i] acked (unless x.ackList)
	x        *txnRare
	gen      uint32
	state    uint8 // smv1.TxnState, unless x.wide
	outcome  uint8 // smv1.Outcome (inline decision), unless x.wide
	reason   uint8 // smv1.Reason (inline decision), unless x.wide
	leaseEnd uint8 // leaseEnd* below
	players  uint8 // playersNone or playersToken: how Decision.Players derives
}

// Values of txn.leaseEnd.
const (
	leaseHeld uint8 = iota
	leaseReleased
	leaseExpired
	leaseEndOther // x.leaseEnd
)

var leaseEndNames = [...]string{leaseHeld: "", leaseReleased: "released", leaseExpired: "expired"}

// Values of txn.players: the inline decision's Players are none, or one per proposal
// player (team order) with the txn's token.
const (
	playersNone uint8 = iota
	playersToken
)

// txnRare holds what few transactions need.
type txnRare struct {
	// dec, when set, is the decision itself (abort details, denials, or a decision a
	// snapshot holds that does not derive); the inline decision fields are then unused.
	dec *smv1.Decision
	// decNil: the record has no decision at all (only a hand-made snapshot does that).
	decNil bool
	// message is the inline decision's Message.
	message string
	// ackList: Acked is acked, not the bitset (more than 64 shards, or a snapshot
	// whose shards and acked lists the bitset cannot represent).
	ackList bool
	acked   []string
	// leaseEnd is LeaseEnd when txn.leaseEnd is leaseEndOther.
	leaseEnd string
	// unknown is the TxnRecord's unknown fields.
	unknown []byte
	// noProposal: the record has no proposal (prop is then "").
	noProposal bool
	// beginIndex is BeginIndex when it is not token>>16.
	hasBeginIndex bool
	beginIndex    uint64
	// wide: state, outcome and reason are here, outside uint8.
	wide                   bool
	state, outcome, reason int32
}

// shardIDs is Shards: sorted and distinct unless a snapshot said otherwise. The slice
// is shared: never modify it.
func (t *txn) shardIDs() []string {
	if t.shardSet == nil {
		return nil
	}
	return *t.shardSet
}

func (t *txn) rare() *txnRare {
	if t.x == nil {
		t.x = &txnRare{}
	}
	return t.x
}

// clone copies x deeply enough that changing the copy never touches x.
func (x *txnRare) clone() *txnRare {
	c := *x
	if x.dec != nil {
		c.dec = proto.Clone(x.dec).(*smv1.Decision)
	}
	c.acked = slices.Clone(x.acked)
	return &c
}

// roBytes views s as bytes for parsing. The bytes must never be modified.
func roBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (t *txn) State() smv1.TxnState {
	if t.x != nil && t.x.wide {
		return smv1.TxnState(t.x.state)
	}
	return smv1.TxnState(t.state)
}

func (t *txn) outcomeVal() smv1.Outcome {
	switch {
	case t.x == nil:
		return smv1.Outcome(t.outcome)
	case t.x.dec != nil:
		return t.x.dec.GetOutcome()
	case t.x.decNil:
		return 0
	case t.x.wide:
		return smv1.Outcome(t.x.outcome)
	}
	return smv1.Outcome(t.outcome)
}

func (t *txn) reasonVal() smv1.Reason {
	if t.x != nil && t.x.wide {
		return smv1.Reason(t.x.reason)
	}
	return smv1.Reason(t.reason)
}

// setEnums sets state, and the inline decision's outcome and reason.
func (t *txn) setEnums(s smv1.TxnState, o smv1.Outcome, r smv1.Reason) {
	if uint32(s) <= 0xff && uint32(o) <= 0xff && uint32(r) <= 0xff && (t.x == nil || !t.x.wide) {
		t.state, t.outcome, t.reason = uint8(s), uint8(o), uint8(r)
		return
	}
	x := t.rare()
	x.wide, x.state, x.outcome, x.reason = true, int32(s), int32(o), int32(r)
	t.state, t.outcome, t.reason = 0, 0, 0
}

func (t *txn) setState(s smv1.TxnState) { t.setEnums(s, t.outcomeInline(), t.reasonVal()) }

// outcomeInline is the inline decision's outcome, whatever mode the decision is in.
func (t *txn) outcomeInline() smv1.Outcome {
	if t.x != nil && t.x.wide {
		return smv1.Outcome(t.x.outcome)
	}
	return smv1.Outcome(t.outcome)
}

func (t *txn) leaseEndVal() string {
	if t.leaseEnd == leaseEndOther {
		return t.x.leaseEnd
	}
	return leaseEndNames[t.leaseEnd]
}

func (t *txn) setLeaseEnd(s string) {
	if i := slices.Index(leaseEndNames[:], s); i >= 0 {
		t.leaseEnd = uint8(i)
		return
	}
	t.leaseEnd = leaseEndOther
	t.rare().leaseEnd = s
}

func (t *txn) beginIndex() uint64 {
	if t.x != nil && t.x.hasBeginIndex {
		return t.x.beginIndex
	}
	return t.token >> 16
}

func (t *txn) message() string {
	if t.x == nil {
		return ""
	}
	return t.x.message
}

// pid is the proposal id: a substring of prop.
func (t *txn) pid() string {
	var id string
	for it := (fields{m: t.prop}); ; {
		num, typ, v, ok := it.next()
		if !ok {
			return id
		}
		if num == 1 && typ == protowire.BytesType {
			id = v
		}
	}
}

// eachPlayer calls fn with every player of prop in team order (proposalPlayers'
// order): its id and shard, substrings of prop, as protobuf decoding would give them.
func eachPlayer(prop string, fn func(id, shard string)) {
	for teams := (fields{m: prop}); ; {
		num, typ, team, ok := teams.next()
		if !ok {
			return
		}
		if num != 3 || typ != protowire.BytesType {
			continue
		}
		for players := (fields{m: team}); ; {
			num, typ, player, ok := players.next()
			if !ok {
				break
			}
			if num != 1 || typ != protowire.BytesType {
				continue
			}
			var id, shard string
			for f := (fields{m: player}); ; {
				num, typ, v, ok := f.next()
				if !ok {
					break
				}
				switch {
				case typ != protowire.BytesType:
				case num == 1:
					id = v
				case num == 2:
					shard = v
				}
			}
			fn(id, shard)
		}
	}
}

// appendPlayerIDs appends the ids eachPlayer gives to dst.
func appendPlayerIDs(dst []string, prop string) []string {
	eachPlayer(prop, func(id, _ string) { dst = append(dst, id) })
	return dst
}

// fields iterates over the fields of the protobuf message m.
type fields struct {
	m   string
	off int
}

// next returns the next field; v is the value of a length-delimited field, a substring
// of m. It stops (ok false) at the end or at a malformed field, never reached in a
// message that decodes.
func (f *fields) next() (num protowire.Number, typ protowire.Type, v string, ok bool) {
	b := roBytes(f.m[f.off:])
	num, typ, n := protowire.ConsumeTag(b)
	if n <= 0 {
		return 0, 0, "", false
	}
	if typ == protowire.BytesType {
		val, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return 0, 0, "", false
		}
		end := f.off + n + m
		v = f.m[end-len(val) : end]
		f.off = end
		return num, typ, v, true
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, "", false
	}
	f.off += n + m
	return num, typ, "", true
}

// ackedCount is len(Acked).
func (t *txn) ackedCount() int {
	if t.x != nil && t.x.ackList {
		return len(t.x.acked)
	}
	return bits.OnesCount64(t.acked)
}

// ackedList is Acked, in a new slice.
func (t *txn) ackedList() []string {
	if t.x != nil && t.x.ackList {
		return slices.Clone(t.x.acked)
	}
	var out []string
	for a := t.acked; a != 0; a &= a - 1 {
		out = append(out, t.shardIDs()[bits.TrailingZeros64(a)])
	}
	return out
}

// isAcked reports whether shard acknowledged the decision.
func (t *txn) isAcked(shard string) bool {
	if t.x != nil && t.x.ackList {
		_, ok := slices.BinarySearch(t.x.acked, shard)
		return ok
	}
	i, ok := slices.BinarySearch(t.shardIDs(), shard)
	return ok && t.acked&(1<<i) != 0
}

// decision rebuilds the Decision, in a new object.
func (t *txn) decision() *smv1.Decision {
	if t.x != nil {
		if t.x.decNil {
			return nil
		}
		if t.x.dec != nil {
			return proto.Clone(t.x.dec).(*smv1.Decision)
		}
	}
	d := &smv1.Decision{Txid: t.id, ProposalId: t.pid(), Outcome: t.outcomeInline(), Reason: t.reasonVal(), Message: t.message(),
		PolicyRevision: t.revision, CreatedUnixMs: t.created, DecidedUnixMs: t.decided}
	if t.players == playersToken {
		eachPlayer(t.prop, func(id, shard string) {
			d.Players = append(d.Players, &smv1.PlayerDetail{PlayerId: id, ShardId: shard, FencingToken: t.token})
		})
	}
	return d
}

// decisionSummary is the decision without its players, message, policy revision or
// denials: what an Acked's result carries. The driver reads only the state and the
// decided time of it, and every replica builds every result, so the players of every
// decided txn are not rebuilt twice a match for results only the leader reads.
func (t *txn) decisionSummary() *smv1.Decision {
	if t.x != nil {
		if t.x.decNil {
			return nil
		}
		if d := t.x.dec; d != nil {
			return summarize(d)
		}
	}
	return &smv1.Decision{Txid: t.id, ProposalId: t.pid(), Outcome: t.outcomeInline(), Reason: t.reasonVal(),
		DecidedUnixMs: t.decided}
}

// summarize is d's summary as decisionSummary makes it.
func summarize(d *smv1.Decision) *smv1.Decision {
	if d == nil {
		return nil
	}
	return &smv1.Decision{Txid: d.GetTxid(), ProposalId: d.GetProposalId(), Outcome: d.GetOutcome(), Reason: d.GetReason(),
		DecidedUnixMs: d.GetDecidedUnixMs()}
}

// proposal decodes the proposal, in a new object (nil if the record has none).
func (t *txn) proposal() *smv1.Proposal {
	if t.x != nil && t.x.noProposal {
		return nil
	}
	p := &smv1.Proposal{}
	if err := proto.Unmarshal(roBytes(t.prop), p); err != nil {
		// prop was encoded by the FSM or checked when restored: unreachable.
		panic("coordinator: stored proposal does not decode: " + err.Error())
	}
	return p
}

// record rebuilds the TxnRecord, every part of it new. p, if not nil, is the proposal
// to put in it (one the caller owns), saving a decode.
func (t *txn) record(p *smv1.Proposal) *smv1.TxnRecord {
	if p == nil {
		p = t.proposal()
	}
	rec := &smv1.TxnRecord{Txid: t.id, Proposal: p, State: t.State(), Decision: t.decision(), Shards: slices.Clone(t.shardIDs()),
		Acked: t.ackedList(), Token: t.token, LeaseEnd: t.leaseEndVal(), BeginIndex: t.beginIndex(), Traceparent: t.trace}
	if t.x != nil && len(t.x.unknown) > 0 {
		rec.ProtoReflect().SetUnknown(slices.Clone(t.x.unknown))
	}
	return rec
}

// interner shares the strings and shard lists that repeat from txn to txn (shard ids,
// policy revisions). It holds at most internMax of each, so a flood of distinct values
// costs no more than not interning them. It is not safe for concurrent use.
type interner struct {
	strs map[string]string
	sets map[string]*[]string
	key  []byte
}

const internMax = 4096

func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.strs[s]; ok {
		return v
	}
	if in.strs == nil {
		in.strs = make(map[string]string)
	}
	if len(in.strs) < internMax {
		in.strs[s] = s
	}
	return s
}

// set returns a list equal to ids (which it may keep), shared where it can; nil for
// none.
func (in *interner) set(ids []string) *[]string {
	if len(ids) == 0 {
		return nil
	}
	if v, ok := in.lookupSet(ids); ok {
		return v
	}
	return in.addSet(ids)
}

// setOf is set of a copy of ids, copied only if need be.
func (in *interner) setOf(ids []string) *[]string {
	if len(ids) == 0 {
		return nil
	}
	if v, ok := in.lookupSet(ids); ok {
		return v
	}
	return in.addSet(slices.Clone(ids))
}

func (in *interner) lookupSet(ids []string) (*[]string, bool) {
	in.key = in.key[:0]
	for _, id := range ids {
		in.key = protowire.AppendString(in.key, id)
	}
	v, ok := in.sets[string(in.key)]
	return v, ok
}

// addSet adds ids, whose key lookupSet just built.
func (in *interner) addSet(ids []string) *[]string {
	for i, id := range ids {
		ids[i] = in.str(id)
	}
	if in.sets == nil {
		in.sets = make(map[string]*[]string)
	}
	if len(in.sets) < internMax {
		in.sets[string(in.key)] = &ids
	}
	return &ids
}

// txnFromRecord turns a record (from a snapshot of the first format) into a txn that
// record() rebuilds exactly. It takes rec's decision if it must keep one.
func txnFromRecord(rec *smv1.TxnRecord, in *interner) (*txn, error) {
	t := &txn{id: rec.GetTxid(), trace: rec.GetTraceparent(), token: rec.GetToken()}
	if rec.Proposal == nil {
		t.rare().noProposal = true
	} else {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec.Proposal)
		if err != nil {
			return nil, fmt.Errorf("txn %q: encode proposal: %w", t.id, err)
		}
		t.prop = string(b)
	}
	if rec.GetBeginIndex() != t.token>>16 {
		x := t.rare()
		x.hasBeginIndex, x.beginIndex = true, rec.GetBeginIndex()
	}
	t.shardSet = in.set(slices.Clone(rec.GetShards()))
	if ackBitsFit(t.shardIDs(), rec.GetAcked()) {
		for _, a := range rec.GetAcked() {
			i, _ := slices.BinarySearch(t.shardIDs(), a)
			t.acked |= 1 << i
		}
	} else {
		x := t.rare()
		x.ackList, x.acked = true, slices.Clone(rec.GetAcked())
		for i, a := range x.acked {
			x.acked[i] = in.str(a)
		}
	}
	t.setLeaseEnd(rec.GetLeaseEnd())
	if u := rec.ProtoReflect().GetUnknown(); len(u) > 0 {
		t.rare().unknown = slices.Clone(u)
	}
	dec := rec.GetDecision()
	switch mode, ok := decisionDerives(rec); {
	case dec == nil:
		t.rare().decNil = true
		t.setEnums(rec.GetState(), 0, 0)
	case ok:
		t.setEnums(rec.GetState(), dec.GetOutcome(), dec.GetReason())
		t.revision, t.created, t.decided, t.players = in.str(dec.GetPolicyRevision()), dec.GetCreatedUnixMs(), dec.GetDecidedUnixMs(), mode
		if dec.GetMessage() != "" {
			t.rare().message = dec.GetMessage()
		}
	default:
		t.rare().dec = dec
		t.setEnums(rec.GetState(), 0, 0)
	}
	return t, nil
}

// ackBitsFit reports whether the acked bitset over shards represents acked: shards and
// acked sorted without duplicates, acked within shards, at most 64 shards.
func ackBitsFit(shards, acked []string) bool {
	if len(shards) > 64 || !strictlySorted(shards) || !strictlySorted(acked) {
		return false
	}
	for _, a := range acked {
		if _, ok := slices.BinarySearch(shards, a); !ok {
			return false
		}
	}
	return true
}

func strictlySorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// decisionDerives reports whether rec's decision is what the inline fields of a txn
// rebuild, and how its players derive.
func decisionDerives(rec *smv1.TxnRecord) (uint8, bool) {
	d := rec.GetDecision()
	if d == nil || d.GetTxid() != rec.GetTxid() || d.GetProposalId() != rec.GetProposal().GetProposalId() ||
		len(d.GetDenials()) > 0 || len(d.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	if len(d.GetPlayers()) == 0 {
		return playersNone, true
	}
	players := proposalPlayers(rec.GetProposal())
	if len(players) != len(d.GetPlayers()) {
		return 0, false
	}
	for i, pd := range d.GetPlayers() {
		if pd.GetPlayerId() != players[i].GetPlayerId() || pd.GetShardId() != players[i].GetShardId() ||
			pd.GetFencingToken() != rec.GetToken() || pd.GetCode() != "" || pd.GetMessage() != "" || pd.GetHolderTxid() != "" ||
			len(pd.ProtoReflect().GetUnknown()) > 0 {
			return 0, false
		}
	}
	return playersToken, true
}
