package shardsvc

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Rejection codes a World gives in a NO vote, one PlayerRejection per refused player.
const (
	CodeOffline      = "OFFLINE"        // logged out
	CodeBusy         = "BUSY"           // in a dungeon or trading
	CodeTransferring = "TRANSFERRING"   // moving to another shard
	CodeInMatch      = "IN_MATCH"       // already playing a match
	CodeRefused      = "REFUSED"        // declined the match
	CodeUnknown      = "UNKNOWN_PLAYER" // not a player of this shard
)

// WorldConfig configures a World. Start from DefaultWorldConfig.
type WorldConfig struct {
	// ShardID names the shard; player ids are "<ShardID>-p<n>". Required.
	ShardID string
	// Region is the players' home region.
	Region string
	// Regions are the regions players measure latency to; Region is added if missing.
	Regions []string
	// Players is the number of players.
	Players int
	// Regulars is how many players (the first ones) are always online and idle when
	// not in a match and never decline: the "hot" players a load driver picks often
	// to make matches contend for them.
	Regulars int
	// MatchTTL is how long a committed match holds its players at this shard without a
	// RenewMatch or EndMatch; then it ends on its own, as the coordinator's lease
	// expiry does on its side.
	MatchTTL time.Duration
	// RefuseRate is the chance that an idle player declines a match.
	RefuseRate float64
	// AlwaysAvailable makes every player live like a regular: always online and idle
	// when not in a match, never declining (RefuseRate is ignored). The Regulars are
	// still the only hot players. Chaos runs use it to measure the commit ratio under
	// network faults without the players' own refusals.
	AlwaysAvailable bool
	// Life shapes the players' days.
	Life Life
	// Clock drives the players' lives and match TTLs. Required.
	Clock clock.Clock
	// Seed makes the players and their lives; the same seed gives the same world.
	Seed int64
}

// DefaultWorldConfig returns a config with every tunable set; callers fill in ShardID,
// Region and Clock.
func DefaultWorldConfig() WorldConfig {
	return WorldConfig{Regions: []string{"eu-west", "us-east"}, Players: 1000, Regulars: 4,
		MatchTTL: 5 * time.Second, RefuseRate: 0.01, Life: DefaultLife()}
}

// Validate reports the first missing or inconsistent field by name.
func (c *WorldConfig) Validate() error {
	switch {
	case c.ShardID == "":
		return errors.New("shardsvc: WorldConfig.ShardID is empty")
	case c.Region == "":
		return errors.New("shardsvc: WorldConfig.Region is empty")
	case c.Clock == nil:
		return errors.New("shardsvc: WorldConfig.Clock is nil")
	case c.Players < 1:
		return fmt.Errorf("shardsvc: WorldConfig.Players (%d) must be >= 1", c.Players)
	case c.Regulars < 0 || c.Regulars > c.Players:
		return fmt.Errorf("shardsvc: WorldConfig.Regulars (%d) must be in [0, Players (%d)]", c.Regulars, c.Players)
	case c.MatchTTL <= 0:
		return fmt.Errorf("shardsvc: WorldConfig.MatchTTL (%s) must be > 0", c.MatchTTL)
	case !(c.RefuseRate >= 0 && c.RefuseRate <= 1):
		return fmt.Errorf("shardsvc: WorldConfig.RefuseRate (%v) must be in [0, 1]", c.RefuseRate)
	}
	return c.Life.validate()
}

type player struct {
	idx     int
	prof    Profile
	regular bool
	steady  bool // regular, or AlwaysAvailable: no life of its own, never declines
	state   PlayerState
	until   time.Duration // end of the current life spell (mono)
	step    uint64        // life draws so far
	txid    string        // the match reserving or holding the player
	token   uint64        // its fencing token
	// matches are the live matches the player is in: one, or more only if a shard was
	// told to commit overlapping matches (double booking, which the audit reports).
	matches []string
}

type match struct {
	txid     string
	players  []*player
	deadline time.Duration // mono
}

// World is one shard's simulated players: the shard's own truth about who is online,
// idle, busy or in a match. It implements twophase.ShardHandler and is safe for
// concurrent use.
type World struct {
	cfg  WorldConfig
	seed uint64

	mu        sync.Mutex
	players   []*player
	byID      map[string]*player
	reserved  map[string][]*player // txid → players reserved for it
	matches   map[string]*match    // live matches by txid
	deadlines matchHeap
	ended     map[string]time.Duration // txids of ended matches → when, so a repeated Commit stays a no-op
	endedQ    []endedAt
	tokens    map[string]uint64 // highest fencing token applied per player
	stats     WorldStats
}

type endedAt struct {
	txid string
	at   time.Duration
}

var _ twophase.ShardHandler = (*World)(nil)

// NewWorld makes the players of one shard.
func NewWorld(cfg WorldConfig) (*World, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !slices.Contains(cfg.Regions, cfg.Region) {
		cfg.Regions = append(slices.Clone(cfg.Regions), cfg.Region)
	}
	w := &World{cfg: cfg, seed: mix64(uint64(cfg.Seed) ^ hashString(cfg.ShardID)),
		byID: make(map[string]*player, cfg.Players), reserved: make(map[string][]*player),
		matches: make(map[string]*match), ended: make(map[string]time.Duration), tokens: make(map[string]uint64),
		stats: WorldStats{Rejected: map[string]uint64{}}}
	now := cfg.Clock.Mono()
	for i := 0; i < cfg.Players; i++ {
		p := &player{idx: i, regular: i < cfg.Regulars}
		p.steady = p.regular || cfg.AlwaysAvailable
		p.prof = w.profile(i)
		w.startLife(p, now)
		w.players = append(w.players, p)
		w.byID[p.prof.ID] = p
	}
	return w, nil
}

// ShardID returns the shard's id.
func (w *World) ShardID() string { return w.cfg.ShardID }

// Region returns the players' home region.
func (w *World) Region() string { return w.cfg.Region }

// Prepare reserves every player for txid if every one of them is online, idle and
// willing; otherwise it reserves nobody and returns one rejection per refused player.
func (w *World) Prepare(_ context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	w.stats.Prepares++
	var rej []*smv1.PlayerRejection
	refuse := func(id, code, msg string) {
		rej = append(rej, &smv1.PlayerRejection{PlayerId: id, Code: code, Message: msg})
		w.stats.Rejected[code]++
	}
	ps := make([]*player, 0, len(players))
	for _, sp := range players {
		p := w.byID[sp.GetPlayerId()]
		if p == nil {
			refuse(sp.GetPlayerId(), CodeUnknown, "no such player on shard "+w.cfg.ShardID)
			continue
		}
		w.advance(p, now)
		switch p.state {
		case StateIdle:
			if w.refuses(p, txid) {
				refuse(p.prof.ID, CodeRefused, "player declined the match")
			}
		case StateReserved:
			if p.txid != txid {
				refuse(p.prof.ID, twophase.RejectReserved, "reserved for match "+p.txid)
			}
		case StateInMatch:
			refuse(p.prof.ID, CodeInMatch, "playing match "+p.txid)
		case StateOffline:
			refuse(p.prof.ID, CodeOffline, "player is offline")
		case StateDungeon:
			refuse(p.prof.ID, CodeBusy, "player is in a dungeon")
		case StateTrading:
			refuse(p.prof.ID, CodeBusy, "player is trading")
		case StateTransferring:
			refuse(p.prof.ID, CodeTransferring, "player is transferring to another shard")
		}
		ps = append(ps, p)
	}
	if len(rej) > 0 {
		return rej, nil
	}
	for i, p := range ps {
		p.state, p.txid, p.token = StateReserved, txid, players[i].GetFencingToken()
	}
	w.reserved[txid] = ps
	w.stats.Reserved++
	return nil, nil
}

// Commit moves the players into match txid. Behind a twophase.Participant, players
// holds only players whose tokens are current on the shard's durable record; the World
// also keeps its own in-memory fence, so a player whose token is lower than one it
// already applied was superseded and is left alone; any other player is placed in the match even without a reservation, because
// the coordinator's logged decision is authoritative. Repeating a Commit is a no-op.
func (w *World) Commit(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	if _, done := w.ended[txid]; done {
		// Ended before (or since) it started here: the host released it before this
		// Commit arrived, or this is a repeat. Nothing to play; free any reservation.
		for _, p := range w.reserved[txid] {
			if p.state == StateReserved && p.txid == txid {
				w.becomeIdle(p, now)
			}
		}
		delete(w.reserved, txid)
		return nil
	}
	if _, live := w.matches[txid]; live {
		return nil
	}
	fenced := make([]bool, len(players))
	for i, sp := range players {
		fenced[i] = sp.GetFencingToken() < w.tokens[sp.GetPlayerId()]
	}
	m := &match{txid: txid, deadline: now + w.cfg.MatchTTL}
	for i, sp := range players {
		p := w.byID[sp.GetPlayerId()]
		switch {
		case p == nil:
			w.stats.Anomalies++
			continue
		case fenced[i]:
			w.stats.Fenced++
			if p.state == StateReserved && p.txid == txid {
				w.becomeIdle(p, now)
			}
			continue
		}
		w.tokens[p.prof.ID] = max(w.tokens[p.prof.ID], sp.GetFencingToken())
		switch {
		case p.state == StateReserved && p.txid == txid:
		case p.state == StateInMatch:
			w.stats.DoubleBooked++ // the shard was told to commit overlapping matches
		case p.state == StateReserved:
			w.stats.Anomalies++
			w.reserved[p.txid] = slices.DeleteFunc(w.reserved[p.txid], func(q *player) bool { return q == p })
		default:
			w.stats.Anomalies++ // a commit without this shard's reservation
		}
		p.state, p.txid, p.token = StateInMatch, txid, sp.GetFencingToken()
		p.matches = append(p.matches, txid)
		m.players = append(m.players, p)
	}
	delete(w.reserved, txid)
	w.matches[txid] = m
	heap.Push(&w.deadlines, deadline{txid: txid, at: m.deadline})
	w.stats.Commits++
	return nil
}

// Abort releases the players reserved for txid. Repeating it is a no-op.
func (w *World) Abort(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	ps := w.reserved[txid]
	for _, sp := range players {
		if p := w.byID[sp.GetPlayerId()]; p != nil {
			ps = append(ps, p)
		}
	}
	released := false
	for _, p := range ps {
		if p.state == StateReserved && p.txid == txid {
			w.becomeIdle(p, now)
			released = true
		}
	}
	delete(w.reserved, txid)
	if released {
		w.stats.Aborts++
	}
	return nil
}

// EndMatch ends match txid: its players return to idle (unless they are also in
// another match). The match host calls it when it releases the match. If the match's
// Commit has not reached this shard yet, it will not start when it does. It reports
// whether the match was live.
func (w *World) EndMatch(txid string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	m, ok := w.matches[txid]
	if !ok {
		if _, done := w.ended[txid]; !done {
			w.ended[txid] = now
			w.endedQ = append(w.endedQ, endedAt{txid, now})
		}
		return false
	}
	w.end(m, now)
	w.stats.Ended++
	return true
}

// RenewMatch restarts the TTL of match txid, as the coordinator's Renew does for its
// leases. It reports whether the match was live.
func (w *World) RenewMatch(txid string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	m, ok := w.matches[txid]
	if !ok {
		return false
	}
	m.deadline = now + w.cfg.MatchTTL
	heap.Push(&w.deadlines, deadline{txid: txid, at: m.deadline})
	return true
}

func (w *World) end(m *match, now time.Duration) {
	for _, p := range m.players {
		p.matches = slices.DeleteFunc(p.matches, func(t string) bool { return t == m.txid })
		switch {
		case p.state != StateInMatch:
		case len(p.matches) > 0:
			p.txid = p.matches[len(p.matches)-1] // still in an overlapping match
		default:
			w.becomeIdle(p, now)
		}
	}
	delete(w.matches, m.txid)
	w.ended[m.txid] = now
	w.endedQ = append(w.endedQ, endedAt{m.txid, now})
}

// expire ends the matches whose TTL ran out and forgets ended matches long gone.
func (w *World) expire(now time.Duration) {
	for len(w.deadlines) > 0 && w.deadlines[0].at <= now {
		d := heap.Pop(&w.deadlines).(deadline)
		if m, ok := w.matches[d.txid]; ok && m.deadline <= now {
			w.end(m, now)
			w.stats.Expired++
		}
	}
	keep := 10 * max(w.cfg.MatchTTL, time.Minute)
	i := 0
	for ; i < len(w.endedQ) && now-w.endedQ[i].at > keep; i++ {
		delete(w.ended, w.endedQ[i].txid)
	}
	w.endedQ = w.endedQ[i:]
}

// PickIdle returns up to k distinct players, other than the regulars, who are online
// and idle now and for whom accept (called with the World locked; it must be quick)
// returns true. It samples players at random with rng, so it is cheap but may return
// fewer than k when idle players are scarce.
func (w *World) PickIdle(rng *rand.Rand, k int, accept func(Profile) bool) []Profile {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	n := len(w.players) - w.cfg.Regulars
	if n <= 0 || k <= 0 {
		return nil
	}
	out := make([]Profile, 0, k)
	var taken []int
	for try := 0; try < 24*k+32 && len(out) < k; try++ {
		idx := w.cfg.Regulars + rng.IntN(n)
		p := w.players[idx]
		w.advance(p, now)
		if p.state != StateIdle || slices.Contains(taken, idx) || (accept != nil && !accept(p.prof)) {
			continue
		}
		taken = append(taken, idx)
		out = append(out, p.prof)
	}
	return out
}

// Regulars returns the profiles of the always-online players, whatever they are doing.
func (w *World) Regulars() []Profile {
	out := make([]Profile, 0, w.cfg.Regulars)
	for _, p := range w.players[:w.cfg.Regulars] {
		out = append(out, p.prof) // profiles never change: no lock needed
	}
	return out
}

// IdlePlayers lists every player who is online and idle now.
func (w *World) IdlePlayers() []Profile {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Mono()
	w.expire(now)
	var out []Profile
	for _, p := range w.players {
		w.advance(p, now)
		if p.state == StateIdle {
			out = append(out, p.prof)
		}
	}
	return out
}

type deadline struct {
	txid string
	at   time.Duration
}

// matchHeap orders match deadlines, earliest first. A renewed match leaves its old
// entry behind; expire skips entries that no longer match the live deadline.
type matchHeap []deadline

func (h matchHeap) Len() int           { return len(h) }
func (h matchHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h matchHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *matchHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *matchHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
