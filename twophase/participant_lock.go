package twophase

import (
	"sync"
	"sync/atomic"
)

// ptLocks serialises work per txid without a lock per txid ever seen: an entry lives
// only while someone holds or waits for it.
type ptLocks struct {
	mu sync.Mutex
	m  map[string]*ptLock
}

type ptLock struct {
	mu   sync.Mutex
	refs int // holders and waiters; guarded by ptLocks.mu
}

// lock locks txid and returns the function that unlocks it.
func (l *ptLocks) lock(txid string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*ptLock)
	}
	e := l.m[txid]
	if e == nil {
		e = &ptLock{}
		l.m[txid] = e
	}
	e.refs++
	l.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, txid)
		}
		l.mu.Unlock()
	}
}

// ParticipantStats are a Participant's counters since it was made.
type ParticipantStats struct {
	Prepares    uint64 // Prepare commands handled, duplicates included
	VotesYes    uint64 // YES votes sent
	VotesNo     uint64 // NO votes sent
	StaleTokens uint64 // Prepares refused for a stale fencing token
	StaleTerms  uint64 // Prepares refused for coming from an older coordinator term
	Deferred    uint64 // Prepares the Handler could not answer (an error): no vote sent
	Fenced      uint64 // players left out of a Commit for a stale fencing token
	Commits     uint64 // commits applied (Handler.Commit succeeded and journaled)
	Aborts      uint64 // aborts applied (tombstone journaled)
	Duplicates  uint64 // commands answered from the journal without a new effect
	// Anomalies are commits applied without a YES vote on record (journal lost or
	// NO voted): the coordinator's decision wins, but someone should look.
	Anomalies uint64
	// Violations are refused contradictory decisions (Commit after Abort or the
	// reverse): the coordinator broke atomicity.
	Violations uint64
}

type ptCounters struct {
	prepares, votesYes, votesNo, staleTokens, staleTerms, deferred, fenced, commits, aborts, duplicates, anomalies, violations atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (p *Participant) Stats() ParticipantStats {
	c := &p.stats
	return ParticipantStats{
		Prepares:    c.prepares.Load(),
		VotesYes:    c.votesYes.Load(),
		VotesNo:     c.votesNo.Load(),
		StaleTokens: c.staleTokens.Load(),
		StaleTerms:  c.staleTerms.Load(),
		Deferred:    c.deferred.Load(),
		Fenced:      c.fenced.Load(),
		Commits:     c.commits.Load(),
		Aborts:      c.aborts.Load(),
		Duplicates:  c.duplicates.Load(),
		Anomalies:   c.anomalies.Load(),
		Violations:  c.violations.Load(),
	}
}
