package shardsvc

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// WorldStats are a World's counters since it was made.
type WorldStats struct {
	Prepares uint64 // Prepare calls
	Reserved uint64 // Prepares that reserved every player (YES)
	// Rejected counts refused players by rejection code.
	Rejected map[string]uint64
	Commits  uint64 // matches started
	Aborts   uint64 // reservations released by Abort
	Ended    uint64 // matches ended by EndMatch
	Expired  uint64 // matches ended by their TTL
	// Fenced counts players left out of a Commit because their token was stale.
	Fenced uint64
	// Anomalies count commits of players this shard had not reserved for the match:
	// applied, because the coordinator's decision wins, but someone should look.
	Anomalies uint64
	// DoubleBooked counts players committed to a match while in another one.
	DoubleBooked uint64
}

// PlayerSnapshot is one player's state at a Snapshot.
type PlayerSnapshot struct {
	ID    string
	State PlayerState
	// TxID and Token name the match reserving or holding the player, if any.
	TxID  string
	Token uint64
	// Matches are the live matches the player is in: more than one is double booking.
	Matches []string
}

// WorldSnapshot is what a shard holds at one moment, for status and the audit.
type WorldSnapshot struct {
	Shard string
	// Mono is the World clock's monotonic reading when the snapshot was taken.
	Mono time.Duration
	// Count is the number of players in each state.
	Count map[PlayerState]int
	// Players lists every player, sorted by id.
	Players []PlayerSnapshot
	// LiveMatches is the number of matches being played.
	LiveMatches int
	Stats       WorldStats
}

// Snapshot returns the state of every player, with their lives played forward to now.
func (w *World) Snapshot() WorldSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	s := WorldSnapshot{Shard: w.cfg.ShardID, Mono: now, Count: map[PlayerState]int{},
		Players: make([]PlayerSnapshot, 0, len(w.players)), LiveMatches: len(w.matches), Stats: w.statsLocked()}
	for _, p := range w.players {
		w.advance(p, now)
		s.Count[p.state]++
		s.Players = append(s.Players, PlayerSnapshot{ID: p.prof.ID, State: p.state, TxID: p.txid, Token: p.token,
			Matches: slices.Clone(p.matches)})
	}
	slices.SortFunc(s.Players, func(a, b PlayerSnapshot) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

// Stats returns a copy of the counters.
func (w *World) Stats() WorldStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statsLocked()
}

func (w *World) statsLocked() WorldStats {
	s := w.stats
	s.Rejected = maps.Clone(w.stats.Rejected)
	return s
}
