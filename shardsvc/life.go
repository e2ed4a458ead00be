package shardsvc

import (
	"fmt"
	"hash/fnv"
	"math"
	"time"
)

// PlayerState is what a player is doing, as the player's shard knows it.
type PlayerState uint8

// Player states. The first five are the player's own life; Reserved and InMatch are
// set only by the two-phase protocol and freeze that life until the match ends.
const (
	StateOffline PlayerState = iota + 1
	StateIdle
	StateDungeon
	StateTrading
	StateTransferring
	// StateReserved: the shard voted YES for a match and holds the player for it.
	StateReserved
	// StateInMatch: the match committed; the player plays it until it ends.
	StateInMatch
)

var stateNames = [...]string{StateOffline: "OFFLINE", StateIdle: "IDLE", StateDungeon: "DUNGEON",
	StateTrading: "TRADING", StateTransferring: "TRANSFERRING", StateReserved: "RESERVED", StateInMatch: "IN_MATCH"}

// String returns the state's name.
func (s PlayerState) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("PlayerState(%d)", uint8(s))
}

// Life shapes the simulated players' days. Every spell's length is drawn from an
// exponential distribution with the given mean (at least MinSpell).
type Life struct {
	// Idle is the mean time an online player stays idle before doing something else.
	Idle time.Duration
	// Offline is the mean time a player stays logged out.
	Offline time.Duration
	// Dungeon, Trading and Transfer are the mean lengths of those activities.
	Dungeon, Trading, Transfer time.Duration
	// LogoutShare is the share of idle spells that end with logging out; of the rest,
	// TradeShare go trading, TransferShare transfer, and the others enter a dungeon.
	LogoutShare, TradeShare, TransferShare float64
	// MinSpell bounds every spell from below, so a player never flickers.
	MinSpell time.Duration
}

// DefaultLife is a busy evening on a game server: about two thirds of the players who
// are not in a match are online and idle at any time.
func DefaultLife() Life {
	return Life{Idle: 20 * time.Second, Offline: 30 * time.Second, Dungeon: 15 * time.Second,
		Trading: 4 * time.Second, Transfer: 6 * time.Second, LogoutShare: 0.15, TradeShare: 0.3,
		TransferShare: 0.1, MinSpell: 200 * time.Millisecond}
}

func (l Life) validate() error {
	for name, d := range map[string]time.Duration{"Idle": l.Idle, "Offline": l.Offline, "Dungeon": l.Dungeon,
		"Trading": l.Trading, "Transfer": l.Transfer} {
		if d <= 0 {
			return fmt.Errorf("shardsvc: Life.%s (%s) must be > 0", name, d)
		}
	}
	for name, v := range map[string]float64{"LogoutShare": l.LogoutShare, "TradeShare": l.TradeShare,
		"TransferShare": l.TransferShare} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("shardsvc: Life.%s (%v) must be in [0, 1]", name, v)
		}
	}
	if l.TradeShare+l.TransferShare > 1 {
		return fmt.Errorf("shardsvc: Life.TradeShare + TransferShare (%v) must be <= 1", l.TradeShare+l.TransferShare)
	}
	if l.MinSpell < 0 {
		return fmt.Errorf("shardsvc: Life.MinSpell (%s) must be >= 0", l.MinSpell)
	}
	return nil
}

// Profile is what a matchmaker knows of a player: the attributes a proposal carries.
type Profile struct {
	ID     string
	Shard  string
	MMR    int32
	Region string
	// LatencyMs is the measured latency to each region. Shared: do not modify.
	LatencyMs map[string]int32
}

// Draws are a pure function of (seed, player, step, salt), so a player's life does not
// depend on which goroutine happened to look at it first: the same seed gives the same
// players and the same days, whatever the interleaving.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit returns a number in [0, 1) determined by its arguments.
func unit(seed uint64, idx int, step, salt uint64) float64 {
	h := mix64(seed ^ mix64(uint64(idx)<<24^step<<4^salt))
	return float64(h>>11) / (1 << 53)
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// Salts keep the draws of one step independent.
const (
	saltNext uint64 = iota + 1
	saltLength
	saltMMR1
	saltMMR2
	saltLatency
	saltStart
	saltRefuse
)

// spell draws the length of a spell with mean m.
func (w *World) spell(p *player, m time.Duration) time.Duration {
	u := unit(w.seed, p.idx, p.step, saltLength)
	d := time.Duration(-math.Log(1-u) * float64(m))
	return max(d, w.cfg.Life.MinSpell)
}

// profile makes player idx's attributes: MMR roughly normal around 1500 (sd 250,
// clamped to [700, 2600]), home region the shard's, 8–45ms to it and 50–78ms to every
// other region.
func (w *World) profile(idx int) Profile {
	u1 := max(unit(w.seed, idx, 0, saltMMR1), 1e-12)
	u2 := unit(w.seed, idx, 0, saltMMR2)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	mmr := int32(math.Round(min(max(1500+250*z, 700), 2600)))
	lat := make(map[string]int32, len(w.cfg.Regions))
	for i, r := range w.cfg.Regions {
		u := unit(w.seed, idx, uint64(i), saltLatency)
		if r == w.cfg.Region {
			lat[r] = 8 + int32(u*37)
		} else {
			lat[r] = 50 + int32(u*28)
		}
	}
	return Profile{ID: fmt.Sprintf("%s-p%05d", w.cfg.ShardID, idx), Shard: w.cfg.ShardID, MMR: mmr,
		Region: w.cfg.Region, LatencyMs: lat}
}

// startLife puts a player somewhere in its day, as if the world had been running.
func (w *World) startLife(p *player, now time.Duration) {
	if p.steady {
		p.state, p.until = StateIdle, math.MaxInt64
		return
	}
	l := w.cfg.Life
	u := unit(w.seed, p.idx, 0, saltStart)
	switch {
	case u < 0.25:
		p.state = StateOffline
	case u < 0.85:
		p.state = StateIdle
	case u < 0.95:
		p.state = StateDungeon
	default:
		p.state = StateTrading
	}
	mean := map[PlayerState]time.Duration{StateOffline: l.Offline, StateIdle: l.Idle, StateDungeon: l.Dungeon, StateTrading: l.Trading}[p.state]
	p.until = now + time.Duration(unit(w.seed, p.idx, 0, saltLength)*float64(mean))
}

// advance plays a player's life forward to now. Reserved and in-match players, and
// steady players (regulars, or all under AlwaysAvailable), are left alone: the
// protocol owns them.
func (w *World) advance(p *player, now time.Duration) {
	if p.steady || p.state == StateReserved || p.state == StateInMatch {
		return
	}
	for i := 0; p.until <= now; i++ {
		start := p.until
		if i == 64 { // a long absence: start afresh rather than replay it all
			start = now
		}
		w.next(p, start)
	}
}

// next moves p from its current life state to the following one, starting at start.
func (w *World) next(p *player, start time.Duration) {
	l := w.cfg.Life
	p.step++
	var mean time.Duration
	switch p.state {
	case StateIdle:
		u := unit(w.seed, p.idx, p.step, saltNext)
		switch {
		case u < l.LogoutShare:
			p.state, mean = StateOffline, l.Offline
		case u < l.LogoutShare+(1-l.LogoutShare)*l.TradeShare:
			p.state, mean = StateTrading, l.Trading
		case u < l.LogoutShare+(1-l.LogoutShare)*(l.TradeShare+l.TransferShare):
			p.state, mean = StateTransferring, l.Transfer
		default:
			p.state, mean = StateDungeon, l.Dungeon
		}
	default: // back from whatever it was
		p.state, mean = StateIdle, l.Idle
	}
	p.until = start + w.spell(p, mean)
}

// becomeIdle returns a player to the idle state at now, with a fresh idle spell.
func (w *World) becomeIdle(p *player, now time.Duration) {
	p.state, p.txid, p.token = StateIdle, "", 0
	if p.steady {
		p.until = math.MaxInt64
		return
	}
	p.step++
	p.until = now + w.spell(p, w.cfg.Life.Idle)
}

// refuses reports whether an idle player declines match txid. It is a pure function of
// the seed, the player and the txid, so a repeated Prepare gets the same answer.
func (w *World) refuses(p *player, txid string) bool {
	if p.steady || w.cfg.RefuseRate <= 0 {
		return false
	}
	return unit(w.seed, p.idx, hashString(txid), saltRefuse) < w.cfg.RefuseRate
}
