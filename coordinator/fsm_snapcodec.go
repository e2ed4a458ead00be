package coordinator

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The FSM snapshot data (what Raft persists, and the data of a snapshot file).
//
// Version 1 is an smv1.FSMState, protobuf-encoded, what builds before version 2 wrote
// and read. This build reads it, and writes it only when told to (SetSnapshotFormat, for
// a rolling upgrade): both need every record rebuilt as a protobuf object.
//
// Version 2 is a stream of records, written and read through a buffer, never whole:
//
//	[8]  snapMagic "\x00SMFSM2\n" (a protobuf message never starts with a zero byte,
//	     so the first byte tells the versions apart)
//	then records, each: [1] kind, uvarint payload length, payload
//	  'H' header, first: uvarints applied index, max token, and the number of shard,
//	      txn, lease holder and lease records the stream holds (checked at the end)
//	  'S' a shard: smv1.ShardInfo, protobuf
//	  'D' the next string of the dictionary (index 1, 2, ...; 0 is ""): shard ids and
//	      policy revisions, written before the first record that refers to them
//	  'T' a transaction (writeTxn), in increasing (token, txid) order
//	  'L' every lease of one transaction (writeLeases), in increasing token order
//	  'Z' the end, last; nothing follows it
//
// Integers are uvarints, signed ones zigzag varints, strings and bytes a uvarint length
// and the bytes. Strings must be valid UTF-8, as protobuf requires of the records they
// rebuild. Equal states write equal bytes.
const (
	snapMagic          = "\x00SMFSM2\n"
	maxSnapRecord      = 64 << 20 // bounds one record, so a corrupt length cannot allocate much
	recHeader     byte = 'H'
	recShard      byte = 'S'
	recDict       byte = 'D'
	recTxn        byte = 'T'
	recLeases     byte = 'L'
	recEnd        byte = 'Z'
)

// Flags of a 'T' record.
const (
	tfCanonicalID = 1 << iota // txid is TxID(token>>16, token&0xffff): not written
	tfRevision                // a policy revision (dictionary index) follows
	tfTrace                   // a traceparent follows
	tfRare                    // a txnRare block ends the record
)

// Flags of a txnRare block.
const (
	rfDec        = 1 << iota // the decision, protobuf
	rfDecNil                 // no decision
	rfMessage                // the inline decision's message
	rfAckList                // acked shards as a list of strings
	rfLeaseEnd               // a lease end other than "", released, expired
	rfUnknown                // the record's unknown fields
	rfNoProposal             // no proposal
	rfBeginIndex             // begin index, not token>>16
	rfWide                   // state, outcome and reason as varints
)

// Flags of an 'L' record.
const (
	lfCanonicalID = 1 << iota // as tfCanonicalID
	lfProposal                // the players are the txn's proposal's: not written
)

// snapWriter writes a version 2 stream.
type snapWriter struct {
	w    *bufio.Writer
	rec  []byte // the record being built
	dict map[string]uint64
	id   []byte
}

func (s *fsmSnapshot) writeTo(bw *bufio.Writer) error {
	w := &snapWriter{w: bw, dict: make(map[string]uint64)}
	slices.SortFunc(s.txns, func(a, b *txn) int {
		if c := cmp.Compare(a.token, b.token); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	slices.SortFunc(s.shards, func(a, b *smv1.ShardInfo) int { return strings.Compare(a.ShardId, b.ShardId) })
	if _, err := bw.WriteString(snapMagic); err != nil {
		return err
	}
	w.rec = w.rec[:0]
	for _, n := range []uint64{s.applied, s.leases.MaxToken(), uint64(len(s.shards)), uint64(len(s.txns)),
		uint64(s.leases.Txns()), uint64(s.leases.Leases())} {
		w.rec = protowire.AppendVarint(w.rec, n)
	}
	if err := w.flushRecord(recHeader); err != nil {
		return err
	}
	for _, sh := range s.shards {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(sh)
		if err != nil {
			return err
		}
		w.rec = append(w.rec[:0], b...)
		if err := w.flushRecord(recShard); err != nil {
			return err
		}
	}
	for _, t := range s.txns {
		if err := w.writeTxn(t); err != nil {
			return err
		}
	}
	next := 0 // merge: s.txns and the lease holders are both in token order
	var ids []string
	err := s.leases.Each(func(tl lease.TxnLeases) error {
		for next < len(s.txns) && s.txns[next].token < tl.Token {
			next++
		}
		var holder *txn
		for i := next; i < len(s.txns) && s.txns[i].token == tl.Token; i++ {
			if s.txns[i].id == tl.TxID {
				holder = s.txns[i]
			}
		}
		fromProposal := false
		if holder != nil && (holder.x == nil || !holder.x.noProposal) {
			ids = ids[:0]
			eachPlayer(holder.prop, func(id, _ string) { ids = append(ids, id) })
			slices.Sort(ids)
			fromProposal = slices.Equal(ids, tl.Players)
		}
		return w.writeLeases(tl, fromProposal)
	})
	if err != nil {
		return err
	}
	w.rec = w.rec[:0]
	return w.flushRecord(recEnd)
}

// writeV1 writes the snapshot in format 1: the bytes proto.MarshalOptions{Deterministic:
// true}.Marshal(FSM.State()) gave, written one record at a time.
func (s *fsmSnapshot) writeV1(w *bufio.Writer) error {
	slices.SortFunc(s.txns, func(a, b *txn) int { return strings.Compare(a.id, b.id) })
	slices.SortFunc(s.shards, func(a, b *smv1.ShardInfo) int { return strings.Compare(a.ShardId, b.ShardId) })
	var buf []byte
	field := func(num protowire.Number, m proto.Message) error {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return err
		}
		buf = protowire.AppendTag(buf[:0], num, protowire.BytesType)
		buf = protowire.AppendBytes(buf, b)
		_, err = w.Write(buf)
		return err
	}
	for _, t := range s.txns {
		if err := field(1, t.record(nil)); err != nil {
			return err
		}
	}
	var leases []lease.Lease
	if err := s.leases.Each(func(tl lease.TxnLeases) error {
		for _, p := range tl.Players {
			leases = append(leases, lease.Lease{Player: p, TxID: tl.TxID, Token: tl.Token, State: tl.State, TTL: tl.TTL, RenewSeq: tl.RenewSeq})
		}
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(leases, func(a, b lease.Lease) int { return strings.Compare(a.Player, b.Player) })
	for _, l := range leases {
		if err := field(2, leaseToProto(l)); err != nil {
			return err
		}
	}
	for _, sh := range s.shards {
		if err := field(3, sh); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		num protowire.Number
		v   uint64
	}{{4, s.applied}, {5, s.leases.MaxToken()}} {
		if f.v != 0 {
			buf = protowire.AppendTag(buf[:0], f.num, protowire.VarintType)
			buf = protowire.AppendVarint(buf, f.v)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushRecord writes w.rec as a record of kind.
func (w *snapWriter) flushRecord(kind byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(w.rec)))
	if _, err := w.w.Write(hdr[:1+n]); err != nil {
		return err
	}
	_, err := w.w.Write(w.rec)
	return err
}

// dictRef returns s's dictionary index, writing a 'D' record first if s is new.
func (w *snapWriter) dictRef(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	if i, ok := w.dict[s]; ok {
		return i, nil
	}
	i := uint64(len(w.dict) + 1)
	w.dict[s] = i
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = recDict
	n := binary.PutUvarint(hdr[1:], uint64(len(s)))
	if _, err := w.w.Write(hdr[:1+n]); err != nil {
		return 0, err
	}
	_, err := w.w.WriteString(s)
	return i, err
}

// canonicalID reports whether id is TxID(token>>16, token&0xffff).
func (w *snapWriter) canonicalID(id string, token uint64) bool {
	w.id = appendTxID(w.id[:0], token)
	return string(w.id) == id
}

func appendTxID(b []byte, token uint64) []byte {
	b = append(b, "tx-"...)
	b = strconv.AppendUint(b, token>>16, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, token&0xffff, 10)
}

// writeTxn writes t as a 'T' record: uvarint flags (tf*); the txid unless canonical;
// uvarint token; bytes state, outcome, reason, lease end, players (txn's fields);
// varints created and decided; the revision's dictionary index if tfRevision; the
// traceparent if tfTrace; uvarint shard count and each shard's dictionary index;
// uvarint acked bitset; the proposal bytes; and if tfRare the rare block (appendRare).
func (w *snapWriter) writeTxn(t *txn) error {
	// Dictionary records go out before the record that uses them.
	rev, err := w.dictRef(t.revision)
	if err != nil {
		return err
	}
	shards := make([]uint64, len(t.shardIDs()))
	for i, s := range t.shardIDs() {
		if shards[i], err = w.dictRef(s); err != nil {
			return err
		}
	}
	var flags uint64
	canonical := w.canonicalID(t.id, t.token)
	if canonical {
		flags |= tfCanonicalID
	}
	if t.revision != "" {
		flags |= tfRevision
	}
	if t.trace != "" {
		flags |= tfTrace
	}
	if t.x != nil {
		flags |= tfRare
	}
	b := protowire.AppendVarint(w.rec[:0], flags)
	if !canonical {
		b = protowire.AppendString(b, t.id)
	}
	b = protowire.AppendVarint(b, t.token)
	b = append(b, t.state, t.outcome, t.reason, t.leaseEnd, t.players)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(t.created))
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(t.decided))
	if t.revision != "" {
		b = protowire.AppendVarint(b, rev)
	}
	if t.trace != "" {
		b = protowire.AppendString(b, t.trace)
	}
	b = protowire.AppendVarint(b, uint64(len(shards)))
	for _, s := range shards {
		b = protowire.AppendVarint(b, s)
	}
	b = protowire.AppendVarint(b, t.acked)
	b = protowire.AppendString(b, t.prop)
	if t.x != nil {
		if b, err = appendRare(b, t.x); err != nil {
			return err
		}
	}
	w.rec = b
	return w.flushRecord(recTxn)
}

// appendRare appends x: uvarint flags (rf*), then in flag order the decision
// (protobuf), the message, the acked list (count, strings), the lease end, the unknown
// fields, the begin index, and state, outcome and reason as zigzag varints.
func appendRare(b []byte, x *txnRare) ([]byte, error) {
	var flags uint64
	for _, c := range []struct {
		on   bool
		flag uint64
	}{{x.dec != nil, rfDec}, {x.decNil, rfDecNil}, {x.message != "", rfMessage}, {x.ackList, rfAckList},
		{x.leaseEnd != "", rfLeaseEnd}, {len(x.unknown) > 0, rfUnknown}, {x.noProposal, rfNoProposal},
		{x.hasBeginIndex, rfBeginIndex}, {x.wide, rfWide}} {
		if c.on {
			flags |= c.flag
		}
	}
	b = protowire.AppendVarint(b, flags)
	if x.dec != nil {
		d, err := proto.MarshalOptions{Deterministic: true}.Marshal(x.dec)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendBytes(b, d)
	}
	if x.message != "" {
		b = protowire.AppendString(b, x.message)
	}
	if x.ackList {
		b = protowire.AppendVarint(b, uint64(len(x.acked)))
		for _, a := range x.acked {
			b = protowire.AppendString(b, a)
		}
	}
	if x.leaseEnd != "" {
		b = protowire.AppendString(b, x.leaseEnd)
	}
	if len(x.unknown) > 0 {
		b = protowire.AppendBytes(b, x.unknown)
	}
	if x.hasBeginIndex {
		b = protowire.AppendVarint(b, x.beginIndex)
	}
	if x.wide {
		for _, v := range []int32{x.state, x.outcome, x.reason} {
			b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(v)))
		}
	}
	return b, nil
}

// writeLeases writes one transaction's leases as an 'L' record: uvarint flags (lf*);
// the txid unless canonical; uvarint token; byte state; zigzag varint TTL in
// nanoseconds; uvarint renew sequence; and unless lfProposal (the players are the
// transaction's proposal's, the usual case) the player count and ids, sorted.
func (w *snapWriter) writeLeases(tl lease.TxnLeases, fromProposal bool) error {
	var flags uint64
	canonical := w.canonicalID(tl.TxID, tl.Token)
	if canonical {
		flags |= lfCanonicalID
	}
	if fromProposal {
		flags |= lfProposal
	}
	b := protowire.AppendVarint(w.rec[:0], flags)
	if !canonical {
		b = protowire.AppendString(b, tl.TxID)
	}
	b = protowire.AppendVarint(b, tl.Token)
	b = append(b, byte(tl.State))
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(tl.TTL)))
	b = protowire.AppendVarint(b, tl.RenewSeq)
	if !fromProposal {
		b = protowire.AppendVarint(b, uint64(len(tl.Players)))
		for _, p := range tl.Players {
			b = protowire.AppendString(b, p)
		}
	}
	w.rec = b
	return w.flushRecord(recLeases)
}

// errSnapshot marks a snapshot that does not decode.
var errSnapshot = errors.New("malformed FSM snapshot")

func badSnap(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSnapshot, fmt.Sprintf(format, args...))
}

// decodeState decodes a snapshot of either version, checking everything a restore
// relies on, into a state whose txns are of generation gen.
func decodeState(r *bufio.Reader, gen uint32) (*fsmState, error) {
	first, err := r.Peek(1)
	if errors.Is(err, io.EOF) {
		return decodeV1(nil, gen) // no bytes: the empty FSMState
	}
	if err != nil {
		return nil, err
	}
	if first[0] != snapMagic[0] {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return decodeV1(b, gen)
	}
	return decodeV2(r, gen)
}

// decodeV1 decodes a version 1 snapshot: an smv1.FSMState, read one record at a time,
// with the semantics proto.Unmarshal gives it (a later scalar wins, fields of the wrong
// wire type are skipped as unknown) and the FSM's load of it (later txns and shards of
// one id win, and so does a later txn of one proposal id).
func decodeV1(b []byte, gen uint32) (*fsmState, error) {
	var applied, maxToken uint64
	if err := eachV1Field(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == 4 && typ == protowire.VarintType:
			applied = n
		case num == 5 && typ == protowire.VarintType:
			maxToken = n
		}
		return nil
	}); err != nil {
		return nil, err
	}
	st := &fsmState{txns: newTxnIndex(0), byProposal: newPIDIndex(0), shards: make(map[string]*smv1.ShardInfo), applied: applied}
	leases := lease.NewBuilder(maxToken, 0, 0)
	err := eachV1Field(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			var rec smv1.TxnRecord
			if err := proto.Unmarshal(v, &rec); err != nil {
				return badSnap("txn: %v", err)
			}
			if rec.GetTxid() == "" {
				return badSnap("a transaction has no txid")
			}
			t, err := txnFromRecord(&rec, &st.intern)
			if err != nil {
				return badSnap("%v", err)
			}
			t.gen = gen
			st.txns.Put(t.id, t)
			st.byProposal.Put(t.pid(), t)
		case 2:
			var l smv1.LeaseRecord
			if err := proto.Unmarshal(v, &l); err != nil {
				return badSnap("lease: %v", err)
			}
			if err := leases.Add(leaseFromProto(&l)); err != nil {
				return badSnap("lease table: %v", err)
			}
		case 3:
			s := &smv1.ShardInfo{}
			if err := proto.Unmarshal(v, s); err != nil {
				return badSnap("shard: %v", err)
			}
			if s.GetShardId() == "" {
				return badSnap("a shard has no id")
			}
			st.shards[s.ShardId] = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.leases, err = leases.Table(); err != nil {
		return nil, badSnap("lease table: %v", err)
	}
	return st, nil
}

// eachV1Field calls fn with every field of the FSMState b: v for length-delimited
// fields, n for varints.
func eachV1Field(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return badSnap("FSM state: malformed field")
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return badSnap("FSM state: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
