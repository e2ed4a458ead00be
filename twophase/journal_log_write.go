package twophase

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/shardmatch/shardmatch/internal/fsutil"
)

// write makes r durable and returns once its frame is synced: at once if no batch
// is being written, else in the next batch.
func (j *LogJournal) write(r *logJournalReq) error {
	j.mu.RLock()
	if j.closed {
		j.mu.RUnlock()
		return ErrJournalClosed
	}
	j.wg.Add(1) // under mu: Close sets closed, then waits for these
	j.mu.RUnlock()
	defer j.wg.Done()

	j.gmu.Lock()
	err := j.broken
	j.gmu.Unlock()
	if err != nil {
		return err
	}
	r.done = make(chan error, 1)
	j.group.submit(r)
	return <-r.done
}

// commit writes batch as one frame (more if it is very large) with one write and
// one fdatasync, then applies it to memory and answers every write in it.
func (j *LogJournal) commit(batch []*logJournalReq) {
	j.gmu.Lock()
	err := j.broken
	j.gmu.Unlock()
	if err == nil {
		j.buf = j.appendFrames(j.buf[:0], batch)
		if _, err = j.f.WriteAt(j.buf, j.size); err == nil {
			err = unix.Fdatasync(int(j.f.Fd()))
		}
		if err != nil {
			err = fmt.Errorf("twophase: journal %s: write: %w", j.path, err)
			j.gmu.Lock()
			j.broken = err // what a failed fsync left on disk is unknown
			j.gmu.Unlock()
		} else {
			j.size += int64(len(j.buf))
			j.apply(batch)
		}
		if cap(j.buf) > 1<<20 {
			j.buf = nil // do not pin a buffer grown by one large batch
		}
	}
	for _, r := range batch {
		r.done <- err
	}
	if err == nil && j.size >= j.nextCompact {
		j.rewrite()
	}
}

// appendFrames encodes batch into frames of at most logJournalMaxFrame payload.
func (j *LogJournal) appendFrames(b []byte, batch []*logJournalReq) []byte {
	start := len(b)
	b = append(b, make([]byte, logJournalHead)...)
	for _, r := range batch {
		mark := len(b)
		b = appendLogOp(b, r)
		if len(b)-start-logJournalHead > logJournalMaxFrame && mark > start+logJournalHead {
			op := slices.Clone(b[mark:])
			b = sealFrame(b[:mark], start)
			start = len(b)
			b = append(b, make([]byte, logJournalHead)...)
			b = append(b, op...)
		}
	}
	return sealFrame(b, start)
}

// sealFrame fills in the header of the frame that starts at start and ends at len(b).
func sealFrame(b []byte, start int) []byte {
	p := b[start+logJournalHead:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(p)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(p, logJournalCRC))
	return b
}

func appendLogOp(b []byte, r *logJournalReq) []byte {
	b = append(b, r.op)
	switch r.op {
	case logJournalPut:
		b = journalAppendString(b, r.txid)
		b = binary.AppendUvarint(b, uint64(len(r.rec)))
		b = append(b, r.rec...)
		b = appendLogTokens(b, r.tokens)
	case logJournalRaise:
		b = appendLogTokens(b, r.tokens)
	case logJournalDel:
		b = binary.AppendUvarint(b, uint64(len(r.txids)))
		for _, id := range r.txids {
			b = journalAppendString(b, id)
		}
	}
	return b
}

func appendLogTokens(b []byte, toks map[string]uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(toks)))
	for p, t := range toks {
		b = journalAppendString(b, p)
		b = binary.AppendUvarint(b, t)
	}
	return b
}

// apply puts a durable batch into memory.
func (j *LogJournal) apply(batch []*logJournalReq) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range batch {
		switch r.op {
		case logJournalPut:
			j.st.put(r.txid, r.rec, r.tokens) // rec was encoded by Put for this write alone
		case logJournalRaise:
			j.st.raise(r.tokens)
		case logJournalDel:
			j.st.del(r.txids...)
		}
	}
}

// rewrite replaces the file by one holding only the live records and tokens. A
// failure before the rename leaves the old file in use and is tried again after the
// file has grown further; a failure after it breaks the journal.
func (j *LogJournal) rewrite() {
	j.mu.RLock()
	live := j.st.size
	ops := make([]*logJournalReq, 0, len(j.st.recs)+1)
	for id, rec := range j.st.recs {
		ops = append(ops, &logJournalReq{op: logJournalPut, txid: id, rec: rec})
	}
	if len(j.st.tokens) > 0 {
		ops = append(ops, &logJournalReq{op: logJournalRaise, tokens: maps.Clone(j.st.tokens)})
	}
	j.mu.RUnlock()
	// Without a rewrite that halves it, wait for the file to double again.
	j.nextCompact = max(logJournalMinCompact, 2*j.size, 2*live)

	tmp := j.path + logJournalTmp
	f, size, err := writeLogFile(tmp, ops)
	if err != nil {
		_ = os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, j.path); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return
	}
	if err := fsutil.SyncDir(filepath.Dir(j.path)); err != nil {
		_ = f.Close()
		j.gmu.Lock()
		j.broken = fmt.Errorf("twophase: journal %s: rewrite: %w", j.path, err)
		j.gmu.Unlock()
		return
	}
	_ = j.f.Close()
	j.f, j.size = f, size
	j.nextCompact = max(logJournalMinCompact, 2*size)
}

// writeLogFile writes a complete, synced journal file holding ops, in frames of
// about 1 MiB, and returns it open for appending.
func writeLogFile(path string, ops []*logJournalReq) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, 0, err
	}
	b := []byte(logJournalMagic)
	var size int64
	flush := func() error {
		if _, err := f.WriteAt(b, size); err != nil {
			return err
		}
		size += int64(len(b))
		b = b[:0]
		return nil
	}
	for len(ops) > 0 {
		n := 0
		for bytes := 0; n < len(ops) && bytes < 1<<20; n++ {
			bytes += len(ops[n].txid) + len(ops[n].rec) + 16*len(ops[n].tokens) + 8
		}
		start := len(b)
		b = append(b, make([]byte, logJournalHead)...)
		for _, r := range ops[:n] {
			b = appendLogOp(b, r)
		}
		b = sealFrame(b, start)
		ops = ops[n:]
		if err := flush(); err != nil {
			_ = f.Close()
			return nil, 0, err
		}
	}
	if len(b) > 0 {
		if err := flush(); err != nil {
			_ = f.Close()
			return nil, 0, err
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// bytes reads a uvarint-prefixed byte string.
func (d *journalDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("bytes overrun frame")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// tokens reads a token list written by appendLogTokens.
func (d *journalDecoder) tokens() map[string]uint64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make(map[string]uint64, n)
	for ; n > 0 && d.err == nil; n-- {
		p := d.string()
		out[p] = d.uvarint()
	}
	return out
}
