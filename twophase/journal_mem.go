package twophase

import (
	"maps"
	"slices"
	"sync"
)

// MemJournal is a Journal held in memory: for tests, benchmarks and in-process
// clusters where a shard's "crash" keeps its journal (pass the same MemJournal to the
// restarted Participant). It stores records in their encoded form, so it exercises the
// same codec as BoltJournal and can never alias a caller's slices.
type MemJournal struct {
	mu     sync.RWMutex
	recs   map[string][]byte
	tokens map[string]uint64
	closed bool
}

var _ Journal = (*MemJournal)(nil)

// NewMemJournal returns an empty in-memory journal.
func NewMemJournal() *MemJournal {
	return &MemJournal{recs: make(map[string][]byte), tokens: make(map[string]uint64)}
}

// Get returns the record of txid.
func (j *MemJournal) Get(txid string) (JournalEntry, bool, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return JournalEntry{}, false, ErrJournalClosed
	}
	b, ok := j.recs[txid]
	if !ok {
		return JournalEntry{}, false, nil
	}
	e, err := decodeJournalEntry(txid, b)
	return e, err == nil, err
}

// Put writes e and raises tokens atomically.
func (j *MemJournal) Put(e JournalEntry, tokens map[string]uint64) error {
	if err := checkEntry(e); err != nil {
		return err
	}
	b := encodeJournalEntry(e)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrJournalClosed
	}
	j.recs[e.TxID] = b
	journalRaise(j.tokens, tokens)
	return nil
}

// RaiseTokens raises the highest token of every player in tokens.
func (j *MemJournal) RaiseTokens(tokens map[string]uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrJournalClosed
	}
	journalRaise(j.tokens, tokens)
	return nil
}

// Delete removes the records of txids.
func (j *MemJournal) Delete(txids ...string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrJournalClosed
	}
	for _, id := range txids {
		delete(j.recs, id)
	}
	return nil
}

// List returns every record sorted by txid.
func (j *MemJournal) List() ([]JournalEntry, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	ids := slices.Sorted(maps.Keys(j.recs))
	out := make([]JournalEntry, 0, len(ids))
	for _, id := range ids {
		e, err := decodeJournalEntry(id, j.recs[id])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// HighestTokens returns a copy of the highest token seen per player.
func (j *MemJournal) HighestTokens() (map[string]uint64, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	return maps.Clone(j.tokens), nil
}

// Close marks the journal closed. Its contents are dropped: a MemJournal that should
// survive a simulated crash is simply not closed.
func (j *MemJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	j.recs, j.tokens = nil, nil
	return nil
}
