package coordinator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/shardmatch/shardmatch/internal/ptrindex"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// snapReader reads the records of a version 2 stream (fsm_snapcodec.go). Reading a
// field past the end of its record sets err; callers check it once per record.
type snapReader struct {
	r    *bufio.Reader
	buf  []byte // the current record's payload
	off  int
	err  error
	dict []string
	id   []byte
	// txns are the txns read, in (token, txid) order, and cursor the first one a lease
	// record may belong to: leases come in token order too, so a merge finds each
	// holder without a map lookup.
	txns   []*txn
	cursor int
	shards []string
}

// next reads the next record and returns its kind.
func (d *snapReader) next() (byte, error) {
	kind, err := d.r.ReadByte()
	if err != nil {
		return 0, truncated(err)
	}
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, truncated(err)
	}
	if n > maxSnapRecord {
		return 0, badSnap("a %q record of %d bytes", kind, n)
	}
	if uint64(cap(d.buf)) < n {
		d.buf = make([]byte, n)
	}
	d.buf, d.off = d.buf[:n], 0
	if _, err := io.ReadFull(d.r, d.buf); err != nil {
		return 0, truncated(err)
	}
	return kind, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badSnap("the stream ends before its end record")
	}
	return err
}

func (d *snapReader) fail(what string) {
	if d.err == nil {
		d.err = badSnap("record ends inside %s", what)
	}
}

func (d *snapReader) uvarint() uint64 {
	v, n := protowire.ConsumeVarint(d.buf[d.off:])
	if n < 0 {
		d.fail("an integer")
		return 0
	}
	d.off += n
	return v
}

func (d *snapReader) varint() int64 { return protowire.DecodeZigZag(d.uvarint()) }

func (d *snapReader) byte1() byte {
	if d.off >= len(d.buf) {
		d.fail("a byte")
		return 0
	}
	d.off++
	return d.buf[d.off-1]
}

// bytes returns the next length-delimited value, aliasing the record's buffer.
func (d *snapReader) bytes() []byte {
	v, n := protowire.ConsumeBytes(d.buf[d.off:])
	if n < 0 {
		d.fail("a string")
		return nil
	}
	d.off += n
	return v
}

// str returns the next string, which must be valid UTF-8.
func (d *snapReader) str() string {
	v := d.bytes()
	if !utf8.Valid(v) {
		if d.err == nil {
			d.err = badSnap("a string is not valid UTF-8")
		}
		return ""
	}
	return string(v)
}

func (d *snapReader) dictStr() string {
	i := d.uvarint()
	if i > uint64(len(d.dict)) {
		if d.err == nil {
			d.err = badSnap("dictionary index %d of %d", i, len(d.dict))
		}
		return ""
	}
	if i == 0 {
		return ""
	}
	return d.dict[i-1]
}

// end checks that the record was read exactly.
func (d *snapReader) end(kind byte) error {
	if d.err == nil && d.off != len(d.buf) {
		d.err = badSnap("%d bytes left in a %q record", len(d.buf)-d.off, kind)
	}
	return d.err
}

// holder returns the txn txid, of token, looking first where the merge of txns and
// lease records stands.
func (d *snapReader) holder(txid []byte, token uint64, txns *ptrindex.Index[txn]) *txn {
	for d.cursor < len(d.txns) && d.txns[d.cursor].token < token {
		d.cursor++
	}
	for i := d.cursor; i < len(d.txns) && d.txns[i].token == token; i++ {
		if d.txns[i].id == string(txid) {
			return d.txns[i]
		}
	}
	return txns.Get(string(txid))
}

func decodeV2(r *bufio.Reader, gen uint32) (*fsmState, error) {
	var magic [len(snapMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != snapMagic {
		return nil, badSnap("not an FSM snapshot of version 1 or 2")
	}
	d := &snapReader{r: r}
	if kind, err := d.next(); err != nil || kind != recHeader {
		return nil, badSnap("no header record")
	}
	applied, maxToken := d.uvarint(), d.uvarint()
	var want [4]uint64 // shards, txns, lease holders, leases
	for i := range want {
		want[i] = d.uvarint()
	}
	if err := d.end(recHeader); err != nil {
		return nil, err
	}
	// Size the tables for the counts the header announces, up to a bound: a corrupt
	// header must not allocate much before the stream proves it wrong.
	hint := func(n uint64) int { return int(min(n, 1<<20)) }
	st := &fsmState{txns: newTxnIndex(hint(want[1])), byProposal: newPIDIndex(hint(want[1])),
		shards: make(map[string]*smv1.ShardInfo, hint(want[0])), applied: applied}
	leases := lease.NewBuilder(maxToken, hint(want[2]), hint(want[3]))
	var got [4]uint64
	for {
		kind, err := d.next()
		if err != nil {
			return nil, err
		}
		switch kind {
		case recDict:
			if !utf8.Valid(d.buf) {
				return nil, badSnap("a dictionary string is not valid UTF-8")
			}
			d.dict = append(d.dict, st.intern.str(string(d.buf)))
			d.off = len(d.buf)
		case recShard:
			s := &smv1.ShardInfo{}
			if err := proto.Unmarshal(d.buf, s); err != nil {
				return nil, badSnap("shard: %v", err)
			}
			if s.GetShardId() == "" {
				return nil, badSnap("a shard has no id")
			}
			st.shards[s.ShardId] = s
			got[0]++
			d.off = len(d.buf)
		case recTxn:
			t, err := d.readTxn(st)
			if err != nil {
				return nil, err
			}
			t.gen = gen
			if st.txns.Put(t.id, t) != nil {
				return nil, badSnap("txid %q twice", t.id)
			}
			d.txns = append(d.txns, t)
			if pid := t.pid(); st.byProposal.Put(pid, t) != nil {
				// Two txns of one proposal id (only a hand-made snapshot of version 1
				// has them): as that snapshot, sorted by txid, restored, the last wins.
				for _, o := range d.txns {
					if o.id > st.byProposal.Get(pid).id && o.pid() == pid {
						st.byProposal.Put(pid, o)
					}
				}
			}
			got[1]++
		case recLeases:
			n, err := d.readLeases(st, leases)
			if err != nil {
				return nil, err
			}
			got[2]++
			got[3] += uint64(n)
		case recEnd:
			if got != want {
				return nil, badSnap("the header announces %v shards, txns, lease holders and leases; the stream holds %v", want, got)
			}
			if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
				return nil, badSnap("data follows the end record")
			}
			if st.leases, err = leases.Table(); err != nil {
				return nil, badSnap("lease table: %v", err)
			}
			return st, nil
		default:
			return nil, badSnap("unknown record kind %q", kind)
		}
		if err := d.end(kind); err != nil {
			return nil, err
		}
	}
}

func (d *snapReader) readTxn(st *fsmState) (*txn, error) {
	flags := d.uvarint()
	t := &txn{}
	var id string
	if flags&tfCanonicalID == 0 {
		id = d.str()
	}
	t.token = d.uvarint()
	if flags&tfCanonicalID != 0 {
		d.id = appendTxID(d.id[:0], t.token)
		id = string(d.id)
	}
	t.id = id
	t.state, t.outcome, t.reason, t.leaseEnd, t.players = d.byte1(), d.byte1(), d.byte1(), d.byte1(), d.byte1()
	t.created, t.decided = d.varint(), d.varint()
	if flags&tfRevision != 0 {
		t.revision = d.dictStr()
	}
	if flags&tfTrace != 0 {
		t.trace = d.str()
	}
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		return nil, badSnap("txn %q: %d shards", id, n)
	}
	shards := d.shards[:0]
	for range n {
		shards = append(shards, d.dictStr())
	}
	d.shards = shards
	t.acked = d.uvarint()
	prop := d.bytes()
	if flags&tfRare != 0 {
		d.readRare(t)
	}
	if d.err != nil {
		return nil, d.err
	}
	switch {
	case id == "":
		return nil, badSnap("a transaction has no txid")
	case t.leaseEnd > leaseEndOther || t.leaseEnd == leaseEndOther && (t.x == nil || t.x.leaseEnd == ""):
		return nil, badSnap("txn %q: lease end %d", id, t.leaseEnd)
	case t.players > playersToken:
		return nil, badSnap("txn %q: players %d", id, t.players)
	case t.x != nil && t.x.noProposal && len(prop) > 0:
		return nil, badSnap("txn %q: a proposal and none", id)
	case !wireValid(proposalDesc, prop):
		return nil, badSnap("txn %q: the proposal does not decode", id)
	case t.x != nil && t.x.ackList:
		if t.acked != 0 {
			return nil, badSnap("txn %q: acked bits and list", id)
		}
	case len(shards) > 64 || t.acked>>len(shards) != 0:
		return nil, badSnap("txn %q: acked bits %x of %d shards", id, t.acked, len(shards))
	}
	if t.x == nil || !t.x.ackList {
		if !strictlySorted(shards) {
			return nil, badSnap("txn %q: shards %q not sorted", id, shards)
		}
	}
	t.shardSet = st.intern.setOf(shards)
	t.prop = string(prop)
	return t, nil
}

func (d *snapReader) readRare(t *txn) {
	x := t.rare()
	flags := d.uvarint()
	if flags&rfDec != 0 {
		x.dec = &smv1.Decision{}
		if err := proto.Unmarshal(d.bytes(), x.dec); err != nil && d.err == nil {
			d.err = badSnap("txn %q: decision: %v", t.id, err)
		}
	}
	x.decNil = flags&rfDecNil != 0
	if flags&rfMessage != 0 {
		x.message = d.str()
	}
	if flags&rfAckList != 0 {
		x.ackList = true
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			x.acked = append(x.acked, d.str())
		}
	}
	if flags&rfLeaseEnd != 0 {
		x.leaseEnd = d.str()
	}
	if flags&rfUnknown != 0 {
		x.unknown = slices.Clone(d.bytes())
		if !wireValid(unknownDesc, x.unknown) && d.err == nil {
			d.err = badSnap("txn %q: unknown fields do not decode", t.id)
		}
	}
	x.noProposal = flags&rfNoProposal != 0
	if flags&rfBeginIndex != 0 {
		x.hasBeginIndex, x.beginIndex = true, d.uvarint()
	}
	if flags&rfWide != 0 {
		x.wide = true
		x.state, x.outcome, x.reason = int32(d.varint()), int32(d.varint()), int32(d.varint())
	}
	if d.err == nil && (x.dec != nil && x.decNil || flags>>9 != 0) {
		d.err = badSnap("txn %q: rare flags %x", t.id, flags)
	}
}

// readLeases reads an 'L' record into the lease table and returns how many leases it held.
func (d *snapReader) readLeases(st *fsmState, b *lease.Builder) (int, error) {
	flags := d.uvarint()
	var id []byte
	if flags&lfCanonicalID == 0 {
		id = d.bytes()
		if !utf8.Valid(id) && d.err == nil {
			d.err = badSnap("a txid is not valid UTF-8")
		}
	}
	tl := lease.TxnLeases{Token: d.uvarint()}
	if flags&lfCanonicalID != 0 {
		d.id = appendTxID(d.id[:0], tl.Token)
		id = d.id
	}
	t := d.holder(id, tl.Token, st.txns)
	if t != nil {
		tl.TxID = t.id
	} else {
		tl.TxID = string(id)
	}
	tl.State = lease.State(d.byte1())
	tl.TTL = time.Duration(d.varint())
	tl.RenewSeq = d.uvarint()
	if flags&lfProposal == 0 {
		n := d.uvarint()
		if n > uint64(len(d.buf)) {
			return 0, badSnap("txn %q: %d leases", tl.TxID, n)
		}
		tl.Players = make([]string, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			tl.Players = append(tl.Players, d.str())
		}
	} else {
		if t == nil || t.x != nil && t.x.noProposal {
			return 0, badSnap("leases of txn %q name its proposal's players, and there is no such proposal", tl.TxID)
		}
		tl.Players = appendPlayerIDs(make([]string, 0, 2), t.prop)
		slices.Sort(tl.Players)
	}
	if d.err != nil {
		return 0, d.err
	}
	if flags>>2 != 0 {
		return 0, badSnap("txn %q: lease flags %x", tl.TxID, flags)
	}
	if len(tl.Players) == 0 {
		return 0, badSnap("txn %q: a lease record without players", tl.TxID)
	}
	if err := b.AddTxn(tl); err != nil {
		return 0, badSnap("lease table: %v", err)
	}
	return len(tl.Players), nil
}

var (
	proposalDesc = (&smv1.Proposal{}).ProtoReflect().Descriptor()
	// unknownDesc has no fields: any well-formed fields are valid unknown fields.
	unknownDesc = (&emptypb.Empty{}).ProtoReflect().Descriptor()
	schemas     sync.Map // protoreflect.FullName → *wireSchema
)

// wireValid reports whether b decodes as a message of type md, as proto.Unmarshal
// decides it (well-formed fields, valid UTF-8 in strings, the same of every nested
// message; a field of the wrong wire type is an unknown field), without decoding it.
func wireValid(md protoreflect.MessageDescriptor, b []byte) bool {
	return schemaOf(md).valid(b, 0)
}

// wireSchema is what wireValid needs of a message type, indexed by field number.
type wireSchema struct {
	fields []wireField
	big    map[protowire.Number]wireField // fields numbered past maxDenseField
}

const maxDenseField = 64

// wireField says how to check a length-delimited value of a field.
type wireField struct {
	check uint8 // checkNone (unknown, or bytes) ...
	kind  protoreflect.Kind
	msg   *wireSchema
}

const (
	checkNone uint8 = iota
	checkMessage
	checkString
	checkPacked
)

func schemaOf(md protoreflect.MessageDescriptor) *wireSchema {
	if s, ok := schemas.Load(md.FullName()); ok {
		return s.(*wireSchema)
	}
	building := map[protoreflect.FullName]*wireSchema{}
	s := buildSchema(md, building)
	for name, b := range building {
		schemas.LoadOrStore(name, b)
	}
	return s
}

func buildSchema(md protoreflect.MessageDescriptor, building map[protoreflect.FullName]*wireSchema) *wireSchema {
	if s, ok := building[md.FullName()]; ok {
		return s
	}
	s := &wireSchema{}
	building[md.FullName()] = s
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := wireField{kind: fd.Kind()}
		switch k := fd.Kind(); {
		case k == protoreflect.MessageKind:
			f.check, f.msg = checkMessage, buildSchema(fd.Message(), building)
		case k == protoreflect.StringKind:
			f.check = checkString
		case fd.IsList() && k != protoreflect.BytesKind && k != protoreflect.GroupKind:
			f.check = checkPacked
		default:
			continue
		}
		if n := fd.Number(); n <= maxDenseField {
			for len(s.fields) <= int(n) {
				s.fields = append(s.fields, wireField{})
			}
			s.fields[n] = f
		} else {
			if s.big == nil {
				s.big = make(map[protowire.Number]wireField)
			}
			s.big[n] = f
		}
	}
	return s
}

func (s *wireSchema) valid(b []byte, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if typ == protowire.BytesType {
			var f wireField
			if int(num) < len(s.fields) {
				f = s.fields[num]
			} else if s.big != nil {
				f = s.big[num]
			}
			if f.check != checkNone {
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return false
				}
				switch f.check {
				case checkMessage:
					if !f.msg.valid(v, depth+1) {
						return false
					}
				case checkString:
					if !utf8.Valid(v) {
						return false
					}
				case checkPacked:
					if !packedValid(f.kind, v) {
						return false
					}
				}
				b = b[n:]
				continue
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// packedValid reports whether v is a well-formed packed list of scalars of kind k.
func packedValid(k protoreflect.Kind, v []byte) bool {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return len(v)%4 == 0
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return len(v)%8 == 0
	}
	for len(v) > 0 {
		_, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return false
		}
		v = v[n:]
	}
	return true
}

// consumeTag is protowire.ConsumeTag, refusing field numbers above the largest valid
// one as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}
