package twophase

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// JournalState is what a shard has durably recorded about one transaction.
type JournalState uint8

// Journal states. The numeric values are stored on disk: never renumber them.
const (
	// JournalPrepared: the shard voted YES and holds the players reserved. It is the
	// only state that blocks: the shard must learn the outcome, and the record is never
	// compacted away.
	JournalPrepared JournalState = 1
	// JournalVotedNo: the shard voted NO and holds nothing. Kept so that a repeated
	// Prepare repeats the same NO instead of asking the game again.
	JournalVotedNo JournalState = 2
	// JournalCommitted: the shard applied the commit.
	JournalCommitted JournalState = 3
	// JournalAborted: a tombstone. The shard released the players, or was told of the
	// abort before the Prepare arrived; a later Prepare votes NO.
	JournalAborted JournalState = 4
)

// String returns the state's name for logs.
func (s JournalState) String() string {
	switch s {
	case JournalPrepared:
		return "PREPARED"
	case JournalVotedNo:
		return "VOTED_NO"
	case JournalCommitted:
		return "COMMITTED"
	case JournalAborted:
		return "ABORTED"
	}
	return fmt.Sprintf("JournalState(%d)", uint8(s))
}

func (s JournalState) valid() bool { return s >= JournalPrepared && s <= JournalAborted }

// checkEntry refuses a record no journal may hold: one without a txid or a state.
func checkEntry(e JournalEntry) error {
	if !e.State.valid() {
		return fmt.Errorf("twophase: journal put %q: invalid state %v", e.TxID, e.State)
	}
	if e.TxID == "" {
		return errors.New("twophase: journal put: empty txid")
	}
	return nil
}

// JournalEntry is a shard's durable record of one transaction.
type JournalEntry struct {
	TxID  string
	State JournalState
	// Players are the shard's players in the transaction with their fencing tokens:
	// what the game reserved, so that recovery can commit or release exactly them.
	Players []*smv1.ShardPlayer
	// Rejections are the reasons of a NO vote, repeated verbatim on a repeated Prepare.
	Rejections []*smv1.PlayerRejection
	// Term is the coordinator term of the command that produced this record.
	Term uint64
	// RecordedAt is the wall clock when the record was written. Display only.
	RecordedAt time.Time
	// RecordedMono is the writer's monotonic clock when the record was written. It is
	// only comparable with readings of the same clock in the same process: a
	// Participant treats records it finds at start-up as written at start-up.
	RecordedMono time.Duration
}

// Journal is a shard's durable memory of the transactions it took part in and of the
// highest fencing token it has seen per player. It is what lets a shard that crashed
// after voting YES keep its promise.
//
// Implementations must be safe for concurrent use, must have made a write durable
// before returning from it, and must not retain or share the slices and messages
// passed to or returned from them (callers may modify them).
type Journal interface {
	// Get returns the record of txid, and false if there is none.
	Get(txid string) (JournalEntry, bool, error)
	// Put writes e, replacing any record of e.TxID, and raises the highest token of
	// every player in tokens to at least the given value, in one atomic durable write:
	// a vote is never recorded without the tokens that were fenced for it. tokens may
	// be nil.
	Put(e JournalEntry, tokens map[string]uint64) error
	// RaiseTokens raises the highest token of every player in tokens to at least the
	// given value. Tokens never go down.
	RaiseTokens(tokens map[string]uint64) error
	// Delete removes the records of txids; missing ones are ignored.
	Delete(txids ...string) error
	// List returns every record, sorted by txid.
	List() ([]JournalEntry, error)
	// HighestTokens returns the highest token seen per player.
	HighestTokens() (map[string]uint64, error)
	// Close releases the journal. Later calls fail with ErrJournalClosed.
	Close() error
}

// Record encoding: a hand-rolled binary format with a version byte, so that records
// written by older releases stay readable. It is the Go SDK's own: a shard written in
// another language keeps its journal in its own store, recording the same facts
// (docs/protocol.md, "What a participant must do"), and never reads this one. A
// journal of the game's own passes twophase/journaltest.
//
//	version(1)=1 | state(1) | term uvarint | wall unix-nanos varint (0 = zero time)
//	| mono varint | n uvarint | n × (player string, token uvarint)
//	| m uvarint | m × (player string, code string, message string)
//
// Strings are uvarint length then bytes. The txid is the record's key, not repeated.
const journalCodecV1 = 1

func encodeJournalEntry(e JournalEntry) []byte {
	b := make([]byte, 0, 32+len(e.Players)*24)
	b = append(b, journalCodecV1, byte(e.State))
	b = binary.AppendUvarint(b, e.Term)
	var wall int64
	if !e.RecordedAt.IsZero() {
		wall = e.RecordedAt.UnixNano()
	}
	b = binary.AppendVarint(b, wall)
	b = binary.AppendVarint(b, int64(e.RecordedMono))
	b = binary.AppendUvarint(b, uint64(len(e.Players)))
	for _, p := range e.Players {
		b = journalAppendString(b, p.GetPlayerId())
		b = binary.AppendUvarint(b, p.GetFencingToken())
	}
	b = binary.AppendUvarint(b, uint64(len(e.Rejections)))
	for _, r := range e.Rejections {
		b = journalAppendString(b, r.GetPlayerId())
		b = journalAppendString(b, r.GetCode())
		b = journalAppendString(b, r.GetMessage())
	}
	return b
}

func journalAppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeJournalEntry decodes a record written by encodeJournalEntry. It never panics
// on arbitrary input; it returns ErrJournalCorrupt instead.
func decodeJournalEntry(txid string, b []byte) (JournalEntry, error) {
	d := journalDecoder{b: b}
	e := JournalEntry{TxID: txid}
	if v := d.byte(); v != journalCodecV1 {
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown version %d", v))
		}
	}
	e.State = JournalState(d.byte())
	if d.err == nil && !e.State.valid() {
		d.fail(fmt.Sprintf("unknown state %d", e.State))
	}
	e.Term = d.uvarint()
	if wall := d.varint(); wall != 0 {
		e.RecordedAt = time.Unix(0, wall).UTC()
	}
	e.RecordedMono = time.Duration(d.varint())
	if n := d.count(); n > 0 {
		e.Players = make([]*smv1.ShardPlayer, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			id := d.string()
			e.Players = append(e.Players, &smv1.ShardPlayer{PlayerId: id, FencingToken: d.uvarint()})
		}
	}
	if n := d.count(); n > 0 {
		e.Rejections = make([]*smv1.PlayerRejection, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			r := &smv1.PlayerRejection{PlayerId: d.string()}
			r.Code = d.string()
			r.Message = d.string()
			e.Rejections = append(e.Rejections, r)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return JournalEntry{}, fmt.Errorf("%w: txid %q: %s", ErrJournalCorrupt, txid, d.err)
	}
	return e, nil
}

// journalDecoder reads a record front to back; after the first error every read
// returns a zero value, so the decode logic needs one error check at the end.
type journalDecoder struct {
	b   []byte
	err error
}

func (d *journalDecoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
	d.b = nil
}

func (d *journalDecoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *journalDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *journalDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *journalDecoder) count() int {
	v := d.uvarint()
	// Every item takes at least one byte, so a count larger than what is left is
	// corrupt; checking it keeps a bad length from making the decoder allocate
	// gigabytes.
	if v > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("count %d too large", v))
		return 0
	}
	return int(v)
}

func (d *journalDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string overruns record")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// journalRaise max-merges tokens into dst and reports whether anything rose.
func journalRaise(dst, tokens map[string]uint64) bool {
	rose := false
	for p, t := range tokens {
		// An empty player id has nothing to fence, and bbolt cannot store it as a key;
		// skipping it here keeps every journal alike.
		if p != "" && t > dst[p] {
			dst[p] = t
			rose = true
		}
	}
	return rose
}
