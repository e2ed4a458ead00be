package twophase

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shardmatch/shardmatch/internal/fsutil"
)

// LogJournal is a Journal in one append-only file: every write is appended as a
// frame and the file is fdatasynced before the write returns, so a vote is never
// sent before its record is on disk. Writes are group-committed as in BoltJournal
// (the first write commits at once; writes arriving meanwhile share the next
// frame), and a batch costs one write and one fdatasync, where bbolt rewrites whole
// pages and syncs twice. Reads are served from memory: the journal keeps every live
// record (encoded, ~60–100 bytes each) and every player's highest token, which is
// what a shard that compacts its decided records (Participant.Compact) holds anyway.
//
// The file, all integers big-endian:
//
//	"SMJLOG01" | frame*
//	frame   = u32 length | u32 CRC-32C of payload | payload
//	payload = op*, one batch of writes
//	op      = 1 txid rec tokens   put a record (rec: the record codec of journal.go)
//	        | 2 tokens            raise tokens
//	        | 3 n n×txid          delete records
//	tokens  = n n×(player token)  with strings and n as uvarint-prefixed
//
// A batch is written with one write call and synced before any of it is
// acknowledged, so a crash can damage only that last write: at open, a bad frame with
// no intact frame after it is cut off with everything after it (it was never
// acknowledged). A bad frame followed by an intact one is ErrJournalCorrupt: the
// shard refuses to start rather than forget a vote it sent.
//
// When the file has grown to twice the live data (and at least logJournalMinCompact),
// it is rewritten with only the live records and tokens (written, fsynced, renamed
// over the old file, directory fsynced), inside the writer, so no write waits on it
// for longer than one rewrite. A failed write or sync breaks the journal: every later
// write fails, because what is on disk after a failed fsync is unknown.
type LogJournal struct {
	path string
	lock *os.File // <path>.lock, flocked while open (the data file is replaced by rewrites)

	mu     sync.RWMutex // guards st and closed
	st     journalState // what the file holds; st.size estimates a rewrite's bytes
	closed bool

	group  groupCommit[*logJournalReq] // commit is j.commit
	gmu    sync.Mutex                  // guards broken
	broken error                       // set by a failed write or sync: every later write fails with it

	// Owned by the writer (group.commit, never run twice at once).
	f           *os.File // the data file
	size        int64    // its size
	nextCompact int64    // no rewrite is tried below this size
	buf         []byte   // frame buffer, reused

	wg sync.WaitGroup // writes in progress, waited for by Close
}

// logJournalReq is one queued write.
type logJournalReq struct {
	op     byte
	txid   string
	rec    []byte
	tokens map[string]uint64
	txids  []string
	done   chan error
}

const (
	logJournalMagic = "SMJLOG01"
	logJournalTmp   = ".rewrite"
	logJournalHead  = 8 // length + CRC
	logJournalPut   = 1
	logJournalRaise = 2
	logJournalDel   = 3
	// logJournalMaxFrame bounds one frame, so that a corrupt length cannot make open
	// allocate gigabytes; a batch that would exceed it is split.
	logJournalMaxFrame = 64 << 20
	// logJournalMaxRecord bounds one write's payload.
	logJournalMaxRecord = 16 << 20
)

// logJournalMinCompact is the smallest file that is ever rewritten.
var logJournalMinCompact int64 = 8 << 20

var logJournalCRC = crc32.MakeTable(crc32.Castagnoli)

var _ Journal = (*LogJournal)(nil)

// OpenLogJournal opens, or creates, the append-only journal at path, cutting a torn
// last frame left by a crash. A second process opening the same file waits up to
// two seconds for the first to let go, then fails.
func OpenLogJournal(path string) (*LogJournal, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	if err := flockWithin(lock, journalLockTimeout); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	// A rewrite that crashed before its rename leaves its temporary file behind.
	_ = os.Remove(path + logJournalTmp)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	j := &LogJournal{path: path, lock: lock, f: f, st: newJournalState()}
	j.group.commit = j.commit
	j.group.spawn = func(drain func()) {
		j.wg.Add(1) // inside a write, which holds its own count: Close waits for this too
		go func() {
			defer j.wg.Done()
			drain()
		}()
	}
	if err := j.load(); err != nil {
		_ = f.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	j.nextCompact = max(logJournalMinCompact, 2*j.st.size)
	return j, nil
}

// flockWithin takes an exclusive lock on f, polling until d has passed.
func flockWithin(f *os.File, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("locked by another process: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load reads the file into memory, writing the header of a new file and cutting a
// torn last frame.
func (j *LogJournal) load() error {
	b, err := io.ReadAll(j.f)
	if err != nil {
		return err
	}
	if len(b) < len(logJournalMagic) {
		if len(b) != 0 && string(b) != logJournalMagic[:len(b)] {
			return fmt.Errorf("%w: not a shardmatch journal log", ErrJournalCorrupt)
		}
		// New, or torn while its header was written: start it again.
		if err := j.f.Truncate(0); err != nil {
			return err
		}
		if _, err := j.f.WriteAt([]byte(logJournalMagic), 0); err != nil {
			return err
		}
		if err := j.f.Sync(); err != nil {
			return err
		}
		if err := fsutil.SyncDir(filepath.Dir(j.path)); err != nil {
			return err
		}
		j.size = int64(len(logJournalMagic))
		return nil
	}
	if string(b[:len(logJournalMagic)]) != logJournalMagic {
		return fmt.Errorf("%w: not a shardmatch journal log", ErrJournalCorrupt)
	}
	off := len(logJournalMagic)
	for off < len(b) {
		end, ok := frameEnd(b, off)
		if !ok {
			if !tornTail(b, off) {
				return fmt.Errorf("%w: damaged frame at offset %d of %d", ErrJournalCorrupt, off, len(b))
			}
			if err := j.f.Truncate(int64(off)); err != nil {
				return err
			}
			if err := j.f.Sync(); err != nil {
				return err
			}
			break
		}
		if err := j.replay(b[off+logJournalHead : end]); err != nil {
			return fmt.Errorf("%w: frame at offset %d: %v", ErrJournalCorrupt, off, err)
		}
		off = end
	}
	j.size = int64(off)
	_, err = j.f.Seek(j.size, io.SeekStart)
	return err
}

// frameEnd returns the end of the frame at off, and false if it is not whole and
// intact.
func frameEnd(b []byte, off int) (int, bool) {
	if len(b)-off < logJournalHead {
		return 0, false
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	end := off + logJournalHead + n
	if n == 0 || n > logJournalMaxFrame || end > len(b) {
		return 0, false
	}
	if crc32.Checksum(b[off+logJournalHead:end], logJournalCRC) != binary.BigEndian.Uint32(b[off+4:]) {
		return 0, false
	}
	return end, true
}

// tornTail reports whether the bad frame at off can only be the last write cut short
// by a crash: no intact frame follows it. A crash mid-write can leave any part of the
// last write missing or zeroed (pages reach the disk in any order before the sync),
// but it cannot produce an intact frame after the damage; an acknowledged frame that
// is damaged, with intact ones after it, is corruption.
func tornTail(b []byte, off int) bool {
	for i := off + 1; i+logJournalHead <= len(b); i++ {
		if _, ok := frameEnd(b, i); ok {
			return false
		}
	}
	return true
}

// replay applies one frame's ops to the in-memory state.
func (j *LogJournal) replay(p []byte) error {
	d := journalDecoder{b: p}
	for len(d.b) > 0 && d.err == nil {
		switch op := d.byte(); op {
		case logJournalPut:
			txid := d.string()
			rec := d.bytes()
			toks := d.tokens()
			if d.err != nil {
				break
			}
			if _, err := decodeJournalEntry(txid, rec); err != nil {
				return err
			}
			j.st.put(txid, slices.Clone(rec), toks)
		case logJournalRaise:
			j.st.raise(d.tokens())
		case logJournalDel:
			for n := d.count(); n > 0 && d.err == nil; n-- {
				j.st.del(d.string())
			}
		default:
			d.fail(fmt.Sprintf("unknown op %d", op))
		}
	}
	return d.err
}

// Path returns the journal's file name.
func (j *LogJournal) Path() string { return j.path }

// Get returns the record of txid.
func (j *LogJournal) Get(txid string) (JournalEntry, bool, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return JournalEntry{}, false, ErrJournalClosed
	}
	return j.st.get(txid)
}

// Put appends e and the raised tokens as one durable write.
func (j *LogJournal) Put(e JournalEntry, tokens map[string]uint64) error {
	if err := checkEntry(e); err != nil {
		return err
	}
	rec := encodeJournalEntry(e)
	if len(rec)+len(e.TxID) > logJournalMaxRecord {
		return fmt.Errorf("twophase: journal put %q: record of %d bytes exceeds %d", e.TxID, len(rec), logJournalMaxRecord)
	}
	return j.write(&logJournalReq{op: logJournalPut, txid: e.TxID, rec: rec, tokens: maps.Clone(tokens)})
}

// RaiseTokens raises the highest token of every player in tokens.
func (j *LogJournal) RaiseTokens(tokens map[string]uint64) error {
	if len(tokens) == 0 {
		return j.check()
	}
	return j.write(&logJournalReq{op: logJournalRaise, tokens: maps.Clone(tokens)})
}

// Delete removes the records of txids.
func (j *LogJournal) Delete(txids ...string) error {
	ids := make([]string, 0, len(txids))
	for _, id := range txids {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return j.check()
	}
	return j.write(&logJournalReq{op: logJournalDel, txids: ids})
}

func (j *LogJournal) check() error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrJournalClosed
	}
	return nil
}

// List returns every record, sorted by txid.
func (j *LogJournal) List() ([]JournalEntry, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	return j.st.list()
}

// HighestTokens returns the highest token seen per player.
func (j *LogJournal) HighestTokens() (map[string]uint64, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	return maps.Clone(j.st.tokens), nil
}

// Close waits for writes in progress and closes the file. It is safe to call twice;
// later calls of any other method fail with ErrJournalClosed.
func (j *LogJournal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.wg.Wait() // closed is set, so no new write starts; these finish theirs
	j.gmu.Lock()
	defer j.gmu.Unlock()
	err := j.f.Close()
	_ = j.lock.Close() // releases the flock
	return err
}
