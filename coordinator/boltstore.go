package coordinator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// BoltStore is the durable Raft log and stable store of a node: one bbolt file, every
// write fsync'd before it returns. It implements raft.LogStore and raft.StableStore.
//
// We keep our own rather than raft-wal v0.4.0 (whose tail truncation marks a segment
// sealed without writing its index block, so a node that truncated its log panics on
// restart — hashicorp/raft-wal#31, fixed after the last release) or raft-boltdb/v2
// (which drags hashicorp/raft back to v1.7).
type BoltStore struct {
	db *bolt.DB
}

var (
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")
	// errStableNotFound must read exactly "not found": hashicorp/raft compares the
	// message when it loads the current term of a fresh node.
	errStableNotFound = errors.New("not found")
)

var (
	_ raft.LogStore    = (*BoltStore)(nil)
	_ raft.StableStore = (*BoltStore)(nil)
)

// OpenBoltStore opens (creating if needed) the store at path.
func OpenBoltStore(path string) (*BoltStore, error) {
	// NoFreelistSync: the free-page list is not written on every commit (bbolt rebuilds
	// it by a scan at open), one page write fewer per append.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("coordinator: open raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketStable)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("coordinator: init raft store: %w", err)
	}
	return &BoltStore{db: db}, nil
}

// Close closes the file.
func (s *BoltStore) Close() error { return s.db.Close() }

func key(i uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return b[:]
}

func (s *BoltStore) edge(first bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		var k []byte
		if first {
			k, _ = c.First()
		} else {
			k, _ = c.Last()
		}
		if k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// FirstIndex returns the first index written, 0 for none.
func (s *BoltStore) FirstIndex() (uint64, error) { return s.edge(true) }

// LastIndex returns the last index written, 0 for none.
func (s *BoltStore) LastIndex() (uint64, error) { return s.edge(false) }

// GetLog reads the entry at index into out.
func (s *BoltStore) GetLog(index uint64, out *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(key(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeLog(v, out)
	})
}

// StoreLog stores one entry.
func (s *BoltStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries in one fsync'd transaction.
func (s *BoltStore) StoreLogs(logs []*raft.Log) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		// Indexes only grow: full pages, as for any append-only key order (the last page
		// still splits, and a truncated tail is rewritten like any other key).
		b.FillPercent = 1.0
		for _, l := range logs {
			if err := b.Put(key(l.Index), encodeLog(l)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRange deletes the entries from min to max inclusive.
func (s *BoltStore) DeleteRange(min, max uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		for k, _ := c.Seek(key(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Set stores a stable value.
func (s *BoltStore) Set(k, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketStable).Put(k, v) })
}

// Get reads a stable value; a missing key is errStableNotFound.
func (s *BoltStore) Get(k []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(k)
		if v == nil {
			return errStableNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// SetUint64 stores a stable integer.
func (s *BoltStore) SetUint64(k []byte, v uint64) error { return s.Set(k, key(v)) }

// GetUint64 reads a stable integer.
func (s *BoltStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("coordinator: stable value %q has %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Entry encoding, version 1: version byte, index, term, type, appended-at (unix ns),
// then data and extensions, each as a uvarint length and bytes.
const logEncodingV1 = 1

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+8+1+8+2*binary.MaxVarintLen64+len(l.Data)+len(l.Extensions))
	b = append(b, logEncodingV1)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

var errBadEntry = errors.New("coordinator: corrupt raft log entry")

func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < 26 || b[0] != logEncodingV1 {
		return errBadEntry
	}
	l.Index = binary.BigEndian.Uint64(b[1:])
	l.Term = binary.BigEndian.Uint64(b[9:])
	l.Type = raft.LogType(b[17])
	at := int64(binary.BigEndian.Uint64(b[18:]))
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := b[26:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, errBadEntry
		}
		v := bytes.Clone(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return v, nil
	}
	var err error
	if l.Data, err = field(); err != nil {
		return err
	}
	if l.Extensions, err = field(); err != nil {
		return err
	}
	if len(l.Data) == 0 {
		l.Data = nil
	}
	if len(l.Extensions) == 0 {
		l.Extensions = nil
	}
	return nil
}
