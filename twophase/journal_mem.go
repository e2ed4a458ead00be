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
	st     journalState
	closed bool
}

// journalState is a journal's contents in memory: every record in its encoded form,
// the highest token per player, and about how many bytes they take encoded.
// MemJournal is one; LogJournal serves its reads from one. Its owner locks it.
type journalState struct {
	recs   map[string][]byte
	tokens map[string]uint64
	size   int64
}

func newJournalState() journalState {
	return journalState{recs: make(map[string][]byte), tokens: make(map[string]uint64)}
}

func (s *journalState) get(txid string) (JournalEntry, bool, error) {
	b, ok := s.recs[txid]
	if !ok {
		return JournalEntry{}, false, nil
	}
	e, err := decodeJournalEntry(txid, b)
	return e, err == nil, err
}

func (s *journalState) list() ([]JournalEntry, error) {
	ids := slices.Sorted(maps.Keys(s.recs))
	out := make([]JournalEntry, 0, len(ids))
	for _, id := range ids {
		e, err := decodeJournalEntry(id, s.recs[id])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// put keeps rec, which the caller no longer uses, as txid's record, and raises tokens.
func (s *journalState) put(txid string, rec []byte, tokens map[string]uint64) {
	if old, ok := s.recs[txid]; ok {
		s.size -= recordSize(txid, old)
	}
	s.recs[txid] = rec
	s.size += recordSize(txid, rec)
	s.raise(tokens)
}

func (s *journalState) del(txids ...string) {
	for _, id := range txids {
		if old, ok := s.recs[id]; ok {
			s.size -= recordSize(id, old)
			delete(s.recs, id)
		}
	}
}

// raise max-merges tokens; an empty player id has nothing to fence and is skipped,
// as bbolt cannot store it as a key.
func (s *journalState) raise(tokens map[string]uint64) {
	for p, t := range tokens {
		if p == "" {
			continue
		}
		old, ok := s.tokens[p]
		if !ok {
			s.size += int64(len(p)) + 12
		}
		if !ok || t > old {
			s.tokens[p] = t
		}
	}
}

func recordSize(txid string, rec []byte) int64 { return int64(len(txid)+len(rec)) + 8 }

var _ Journal = (*MemJournal)(nil)

// NewMemJournal returns an empty in-memory journal.
func NewMemJournal() *MemJournal {
	return &MemJournal{st: newJournalState()}
}

// Get returns the record of txid.
func (j *MemJournal) Get(txid string) (JournalEntry, bool, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return JournalEntry{}, false, ErrJournalClosed
	}
	return j.st.get(txid)
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
	j.st.put(e.TxID, b, tokens)
	return nil
}

// RaiseTokens raises the highest token of every player in tokens.
func (j *MemJournal) RaiseTokens(tokens map[string]uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrJournalClosed
	}
	j.st.raise(tokens)
	return nil
}

// Delete removes the records of txids.
func (j *MemJournal) Delete(txids ...string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrJournalClosed
	}
	j.st.del(txids...)
	return nil
}

// List returns every record sorted by txid.
func (j *MemJournal) List() ([]JournalEntry, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	return j.st.list()
}

// HighestTokens returns a copy of the highest token seen per player.
func (j *MemJournal) HighestTokens() (map[string]uint64, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrJournalClosed
	}
	return maps.Clone(j.st.tokens), nil
}

// Close marks the journal closed. Its contents are dropped: a MemJournal that should
// survive a simulated crash is simply not closed.
func (j *MemJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	j.st = journalState{}
	return nil
}
