package twophase

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket layout of a BoltJournal file.
var (
	boltJournalTxns   = []byte("txns")   // txid → encoded JournalEntry
	boltJournalTokens = []byte("tokens") // player → 8-byte big-endian highest token
	boltJournalMeta   = []byte("meta")   // "format" → format version
	boltJournalFormat = []byte("format")
)

// boltJournalFormatV1 is the file layout above. A file with a newer format is refused
// rather than half-understood.
const boltJournalFormatV1 = 1

// journalLockTimeout bounds the wait for bbolt's file lock, so that a second
// process opening the same journal fails instead of hanging forever.
var journalLockTimeout = 2 * time.Second

// BoltJournal is a Journal in a bbolt file. Every write is in a bbolt transaction
// fsynced before the write returns, so a vote is never sent before its record is on
// disk.
//
// Writes are group-committed. A write that finds no transaction in progress commits
// at once in its own goroutine, so writes that come one at a time pay nothing extra.
// Writes that arrive while a transaction commits queue, and the next transaction
// carries all of them with one fsync. A shard serving many txids at once thus pays
// one fsync per batch, not one per record, and no write waits for a batch it is not
// in.
type BoltJournal struct {
	db   *bolt.DB
	path string

	mu     sync.RWMutex // guards closed against use after Close
	closed bool

	group groupCommit[*journalReq] // commit is j.commit
}

// journalReq is one queued write: a record (rec nil for a tokens-only write) and
// tokens to raise; done receives its result once its transaction has committed.
type journalReq struct {
	txid   []byte
	rec    []byte
	tokens map[string]uint64
	done   chan error
}

// write commits r and returns once the transaction holding it has committed: at once
// if no transaction is in progress, else in the next batch. Callers hold j.mu for
// reading (use), so Close never closes the file under a pending write.
func (j *BoltJournal) write(r *journalReq) error {
	r.done = make(chan error, 1)
	j.group.submit(r)
	return <-r.done
}

// commit writes batch in one transaction. If that fails with more than one write in
// it, each is retried in a transaction of its own, so one bad write fails alone.
func (j *BoltJournal) commit(batch []*journalReq) {
	apply := func(tx *bolt.Tx, r *journalReq) error {
		if r.rec != nil {
			if err := tx.Bucket(boltJournalTxns).Put(r.txid, r.rec); err != nil {
				return err
			}
		}
		return boltRaiseTokens(tx, r.tokens)
	}
	err := j.db.Update(func(tx *bolt.Tx) error {
		for _, r := range batch {
			if err := apply(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		r.done <- j.db.Update(func(tx *bolt.Tx) error { return apply(tx, r) })
	}
}

var _ Journal = (*BoltJournal)(nil)

// OpenBoltJournal opens, or creates, the journal at path.
func OpenBoltJournal(path string) (*BoltJournal, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: journalLockTimeout})
	if err != nil {
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{boltJournalTxns, boltJournalTokens} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(boltJournalMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(boltJournalFormat); v != nil {
			if len(v) != 1 || v[0] != boltJournalFormatV1 {
				return fmt.Errorf("%w: unsupported journal format %v", ErrJournalCorrupt, v)
			}
			return nil
		}
		return meta.Put(boltJournalFormat, []byte{boltJournalFormatV1})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	j := &BoltJournal{db: db, path: path}
	j.group.commit = j.commit
	return j, nil
}

// Path returns the journal's file name.
func (j *BoltJournal) Path() string { return j.path }

// use runs fn unless the journal is closed, and keeps Close from closing the file
// under it.
func (j *BoltJournal) use(fn func() error) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrJournalClosed
	}
	return fn()
}

// Get returns the record of txid.
func (j *BoltJournal) Get(txid string) (JournalEntry, bool, error) {
	var (
		e     JournalEntry
		found bool
	)
	err := j.use(func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(boltJournalTxns).Get([]byte(txid))
			if v == nil {
				return nil
			}
			var err error
			e, err = decodeJournalEntry(txid, v)
			found = err == nil
			return err
		})
	})
	return e, found, err
}

// Put writes e and raises tokens in one fsynced transaction (shared with concurrent
// writes: see BoltJournal).
func (j *BoltJournal) Put(e JournalEntry, tokens map[string]uint64) error {
	if err := checkEntry(e); err != nil {
		return err
	}
	rec := encodeJournalEntry(e)
	return j.use(func() error {
		return j.write(&journalReq{txid: []byte(e.TxID), rec: rec, tokens: tokens})
	})
}

// RaiseTokens raises the highest token of every player in tokens.
func (j *BoltJournal) RaiseTokens(tokens map[string]uint64) error {
	return j.use(func() error {
		if len(tokens) == 0 {
			return nil
		}
		return j.write(&journalReq{tokens: tokens})
	})
}

func boltRaiseTokens(tx *bolt.Tx, tokens map[string]uint64) error {
	b := tx.Bucket(boltJournalTokens)
	for p, t := range tokens {
		k := []byte(p)
		if len(k) == 0 {
			// bbolt refuses empty keys; a player without an id has nothing to fence.
			continue
		}
		if v := b.Get(k); len(v) == 8 && binary.BigEndian.Uint64(v) >= t {
			continue
		}
		if err := b.Put(k, binary.BigEndian.AppendUint64(nil, t)); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the records of txids in one transaction.
func (j *BoltJournal) Delete(txids ...string) error {
	return j.use(func() error {
		if len(txids) == 0 {
			return nil
		}
		return j.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(boltJournalTxns)
			for _, id := range txids {
				if id == "" {
					continue
				}
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// List returns every record; bbolt keeps keys sorted bytewise, which is Go's string
// order.
func (j *BoltJournal) List() ([]JournalEntry, error) {
	var out []JournalEntry
	err := j.use(func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(boltJournalTxns).ForEach(func(k, v []byte) error {
				e, err := decodeJournalEntry(string(k), v)
				if err != nil {
					return err
				}
				out = append(out, e)
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HighestTokens returns the highest token seen per player.
func (j *BoltJournal) HighestTokens() (map[string]uint64, error) {
	out := make(map[string]uint64)
	err := j.use(func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(boltJournalTokens).ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: token of player %q has %d bytes", ErrJournalCorrupt, k, len(v))
				}
				out[string(k)] = binary.BigEndian.Uint64(v)
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close closes the file. It waits for calls in progress and is safe to call twice.
func (j *BoltJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return j.db.Close()
}
