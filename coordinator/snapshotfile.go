package coordinator

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The snapshot file: a backup of the whole FSM that `GET /v1/snapshot` streams,
// `coordinator snapshot save` writes, and `POST /v1/snapshot/restore` and `coordinator
// snapshot inspect` verify. Format version 1, every integer big-endian:
//
//	[8]  magic "SMSNAP\r\n" (the CR LF catches text-mode newline mangling)
//	[2]  format version (1)
//	[4]  metadata length M (at most MaxSnapshotMetaBytes)
//	[M]  the Raft snapshot metadata (raft.SnapshotMeta) as JSON
//	[8]  data length D, equal to the metadata's Size
//	[D]  the FSM snapshot exactly as Raft persisted it (fsm_snapcodec.go: a stream
//	     of records, or an smv1.FSMState from builds before that format)
//	[32] SHA-256 of every byte before it
//
// Nothing follows the checksum. A reader learns the sizes before the data, so it can
// refuse a file that is too big before reading it, and it verifies the checksum only at
// the end: whoever restores must spool the data and act only after ReadSnapshot returned
// nil.
const (
	// SnapshotMagic opens every snapshot file.
	SnapshotMagic = "SMSNAP\r\n"
	// SnapshotFormatVersion is the version this build writes and the only one it reads.
	SnapshotFormatVersion uint16 = 1
	// MaxSnapshotMetaBytes bounds the metadata JSON (a Raft configuration of any sane
	// size fits many times over).
	MaxSnapshotMetaBytes = 1 << 20
	// SnapshotOverhead is the file's size beyond its data, metadata excluded.
	SnapshotOverhead = len(SnapshotMagic) + 2 + 4 + 8 + sha256.Size
)

// SnapshotProblem names what is wrong with a snapshot file.
type SnapshotProblem string

// The ways a snapshot file can be refused.
const (
	SnapshotBadMagic  SnapshotProblem = "magic"     // not a shardmatch snapshot
	SnapshotBadFormat SnapshotProblem = "version"   // a format version this build cannot read
	SnapshotBadMeta   SnapshotProblem = "metadata"  // metadata unreadable or inconsistent
	SnapshotTruncated SnapshotProblem = "truncated" // ends before the checksum
	SnapshotChecksum  SnapshotProblem = "checksum"  // SHA-256 mismatch: corrupted
	SnapshotTrailing  SnapshotProblem = "trailing"  // bytes after the checksum
	SnapshotTooLarge  SnapshotProblem = "size"      // data larger than the reader accepts
	SnapshotBadState  SnapshotProblem = "state"     // checksum fine, but not a loadable FSM state
)

// SnapshotError refuses a snapshot file. It matches ErrInvalid: nothing was changed.
type SnapshotError struct {
	Problem SnapshotProblem
	Detail  string
}

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("coordinator: snapshot refused (%s): %s", e.Problem, e.Detail)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *SnapshotError) Is(target error) bool { return target == ErrInvalid }

func snapErr(p SnapshotProblem, format string, args ...any) *SnapshotError {
	return &SnapshotError{Problem: p, Detail: fmt.Sprintf(format, args...)}
}

// WriteSnapshot writes meta and the meta.Size bytes of data as a snapshot file and
// returns the bytes written. It fails if data does not hold exactly meta.Size bytes;
// the file written so far is then unusable (its checksum cannot match).
func WriteSnapshot(w io.Writer, meta *raft.SnapshotMeta, data io.Reader) (int64, error) {
	mj, err := json.Marshal(meta)
	if err != nil {
		return 0, fmt.Errorf("coordinator: encode snapshot metadata: %w", err)
	}
	if len(mj) > MaxSnapshotMetaBytes || meta.Size < 0 {
		return 0, fmt.Errorf("coordinator: snapshot metadata of %d bytes, size %d", len(mj), meta.Size)
	}
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, sum)}
	hdr := make([]byte, 0, len(SnapshotMagic)+6)
	hdr = append(hdr, SnapshotMagic...)
	hdr = binary.BigEndian.AppendUint16(hdr, SnapshotFormatVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(mj)))
	if _, err := cw.Write(append(hdr, mj...)); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(binary.BigEndian.AppendUint64(nil, uint64(meta.Size))); err != nil {
		return cw.n, err
	}
	n, err := io.Copy(cw, io.LimitReader(data, meta.Size))
	if err != nil {
		return cw.n, fmt.Errorf("coordinator: copy snapshot data: %w", err)
	}
	if n != meta.Size {
		return cw.n, fmt.Errorf("coordinator: snapshot data is %d bytes, metadata says %d", n, meta.Size)
	}
	m, err := w.Write(sum.Sum(nil))
	return cw.n + int64(m), err
}

// SnapshotFileSize is the size of the file WriteSnapshot writes for meta.
func SnapshotFileSize(meta *raft.SnapshotMeta) (int64, error) {
	mj, err := json.Marshal(meta)
	if err != nil {
		return 0, fmt.Errorf("coordinator: encode snapshot metadata: %w", err)
	}
	return int64(SnapshotOverhead+len(mj)) + meta.Size, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadSnapshot reads a snapshot file from r, copying its data to data as it goes, and
// verifies it whole: magic, format version, metadata, length, checksum, and that
// nothing follows. maxData bounds the data (0: no bound). Any defect is a
// *SnapshotError; an error writing to data is returned as is. Only when it returns nil
// may the caller trust what it wrote to data.
func ReadSnapshot(r io.Reader, data io.Writer, maxData int64) (*raft.SnapshotMeta, error) {
	sum := sha256.New()
	br := bufio.NewReader(r)
	tr := io.TeeReader(br, sum)
	var magic [len(SnapshotMagic)]byte
	if n, err := io.ReadFull(tr, magic[:]); err != nil {
		if n > 0 && !bytes.HasPrefix([]byte(SnapshotMagic), magic[:n]) {
			return nil, snapErr(SnapshotBadMagic, "starts with %q, not a shardmatch snapshot", magic[:n])
		}
		return nil, readErr(err, "the magic")
	}
	if string(magic[:]) != SnapshotMagic {
		return nil, snapErr(SnapshotBadMagic, "starts with %q, not a shardmatch snapshot (%q)", magic[:], SnapshotMagic)
	}
	var hdr [6]byte
	if _, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, readErr(err, "the header")
	}
	if v := binary.BigEndian.Uint16(hdr[:]); v != SnapshotFormatVersion {
		return nil, snapErr(SnapshotBadFormat, "format version %d; this build reads version %d", v, SnapshotFormatVersion)
	}
	ml := binary.BigEndian.Uint32(hdr[2:])
	if ml == 0 || ml > MaxSnapshotMetaBytes {
		return nil, snapErr(SnapshotBadMeta, "metadata length %d (want 1..%d)", ml, MaxSnapshotMetaBytes)
	}
	mj := make([]byte, ml)
	if _, err := io.ReadFull(tr, mj); err != nil {
		return nil, readErr(err, "the metadata")
	}
	var meta raft.SnapshotMeta
	if err := json.Unmarshal(mj, &meta); err != nil {
		return nil, snapErr(SnapshotBadMeta, "metadata does not decode: %v", err)
	}
	var dl [8]byte
	if _, err := io.ReadFull(tr, dl[:]); err != nil {
		return nil, readErr(err, "the data length")
	}
	size := binary.BigEndian.Uint64(dl[:])
	switch {
	case meta.Size < 0 || uint64(meta.Size) != size:
		return nil, snapErr(SnapshotBadMeta, "data length %d, metadata size %d", size, meta.Size)
	case maxData > 0 && size > uint64(maxData):
		return nil, snapErr(SnapshotTooLarge, "%d bytes of data; this node accepts at most %d", size, maxData)
	case meta.Index == 0 || meta.Term == 0:
		return nil, snapErr(SnapshotBadMeta, "metadata index %d term %d (both must be > 0)", meta.Index, meta.Term)
	case meta.Version < raft.SnapshotVersionMin || meta.Version > raft.SnapshotVersionMax:
		return nil, snapErr(SnapshotBadMeta, "raft snapshot version %d unsupported", meta.Version)
	}
	n, err := io.Copy(sinkWriter{data}, io.LimitReader(tr, meta.Size))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return nil, we.err
		}
		return nil, readErr(err, "the data")
	}
	if n != meta.Size {
		return nil, snapErr(SnapshotTruncated, "data ends after %d of %d bytes", n, meta.Size)
	}
	want := sum.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(br, got[:]); err != nil {
		return nil, readErr(err, "the checksum")
	}
	if !bytes.Equal(got[:], want) {
		return nil, snapErr(SnapshotChecksum, "SHA-256 is %x, the file says %x: the file is corrupted", want, got)
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, snapErr(SnapshotTrailing, "data follows the checksum")
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &meta, nil
}

// readErr classifies a failed read: an early end is truncation, anything else (a
// broken connection, a body over the HTTP limit) is returned as is.
func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return snapErr(SnapshotTruncated, "the file ends inside %s", what)
	}
	return fmt.Errorf("coordinator: read snapshot: %w", err)
}

// writeError marks an error of the data sink, so ReadSnapshot tells it from a read error.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type sinkWriter struct{ w io.Writer }

func (s sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// SnapshotSummary is what a verified snapshot holds.
type SnapshotSummary struct {
	// Index and Term are the Raft position the snapshot was taken at.
	Index, Term uint64
	// Size is the FSM data's size in bytes.
	Size int64
	// AppliedIndex is the FSM's own applied index (the last command entry applied).
	AppliedIndex uint64
	// MaxToken is the highest fencing token the state had issued.
	MaxToken uint64
	// Txns, Leases and Shards count the state; Preparing and Undelivered count the txns
	// a leader will drive again after a restore (presumed abort, redelivery).
	Txns, Preparing, Undelivered, Leases, Shards int
}

// DecodeSnapshotState decodes FSM snapshot data and checks it would load: the same
// decoding and checks FSM.Restore makes (it is the same code), so data that passes never
// makes a restore fail half-way (hashicorp/raft panics the leader if the FSM refuses a
// user restore). It returns the state as FSM.State would, sorted. A defect is a
// *SnapshotError with Problem SnapshotBadState.
func DecodeSnapshotState(b []byte) (*smv1.FSMState, error) {
	st, err := decodeState(bufio.NewReader(bytes.NewReader(b)), 0)
	if err != nil {
		return nil, snapErr(SnapshotBadState, "%v", err)
	}
	return stateOf(st.txns, st.leases, st.shards, st.applied), nil
}

// verifySnapshotState decodes FSM snapshot data from r as DecodeSnapshotState does,
// streaming, and summarizes it without keeping it.
func verifySnapshotState(r io.Reader, meta *raft.SnapshotMeta) (SnapshotSummary, error) {
	st, err := decodeState(bufio.NewReaderSize(r, snapBufSize), 0)
	if err != nil {
		return SnapshotSummary{}, snapErr(SnapshotBadState, "%v", err)
	}
	return st.summary(meta), nil
}

// Summarize describes a verified snapshot's metadata and decoded state.
func Summarize(meta *raft.SnapshotMeta, st *smv1.FSMState) SnapshotSummary {
	s := SnapshotSummary{Index: meta.Index, Term: meta.Term, Size: meta.Size, AppliedIndex: st.GetAppliedIndex(),
		MaxToken: st.GetMaxToken(), Txns: len(st.GetTxns()), Leases: len(st.GetLeases()), Shards: len(st.GetShards())}
	for _, t := range st.GetTxns() {
		s.countTxn(t.GetState())
	}
	return s
}

// countTxn counts one transaction of a snapshot by its state.
func (s *SnapshotSummary) countTxn(state smv1.TxnState) {
	switch state {
	case smv1.TxnState_TXN_STATE_PREPARING:
		s.Preparing++
	case smv1.TxnState_TXN_STATE_DONE:
	default:
		s.Undelivered++
	}
}

// InspectSnapshot verifies a whole snapshot file and decodes its state, in memory: for
// `coordinator snapshot inspect` and tests. maxData bounds the data (0: none).
func InspectSnapshot(r io.Reader, maxData int64) (SnapshotSummary, *smv1.FSMState, error) {
	var buf bytes.Buffer
	meta, err := ReadSnapshot(r, &buf, maxData)
	if err != nil {
		return SnapshotSummary{}, nil, err
	}
	st, err := DecodeSnapshotState(buf.Bytes())
	if err != nil {
		return SnapshotSummary{}, nil, err
	}
	return Summarize(meta, st), st, nil
}
