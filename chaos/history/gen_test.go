package history

import (
	"container/heap"
	"fmt"
	"math/rand"
	"slices"
	"time"
)

// genConfig shapes a generated history.
type genConfig struct {
	seed      int64
	ops       int     // stop proposing once this many ops were invoked
	shards    int     // shards, each with playersPerShard players
	players   int     // players per shard
	hot       float64 // share of player picks from the first two players of each shard
	rho       float64
	retention time.Duration // decided txns older than this at the end are compacted
}

func defaultGen(seed int64, ops int) genConfig {
	return genConfig{seed: seed, ops: ops, shards: 3, players: 300, hot: 0.05, rho: 0.01, retention: 2 * time.Second}
}

// gen simulates a correct coordinator (three nodes, one leader) and its shards as a
// discrete-event simulation and records what they did. It exercises contention
// (PLAYER_LEASED), shard NO votes, prepare timeouts with abort-before-prepare, lost and
// indeterminate proposals and renews, releases, expiries batched into one entry, a
// node that installs a snapshot after lagging, a node that restarts and re-applies,
// and compaction of old txns.
type gen struct {
	cfg      genConfig
	rng      *rand.Rand
	h        *History
	q        events
	seq      int
	now      time.Duration
	index    uint64
	draining bool
	nextTx   int
	nextPID  int

	lagNode, restartNode string
	lagFrom, lagTo       time.Duration
	lagging              bool
	restartAt            time.Duration
	recent               []entry // last entries, for the restarting node's replay

	holders map[string]*glease // player -> live lease
	leases  map[string]*glease // txid -> lease
	txns    []*gtxn
	shardSq map[string]uint64
	journal map[string]map[string]string // shard -> txid -> prepared|committed|aborted
}

type entry struct {
	index uint64
	evs   []LeaseEvent
}

type glease struct {
	tx        string
	players   []PlayerToken
	ttl       time.Duration
	renewSeq  uint64
	lastStart time.Duration
	active    bool
	live      bool
}

type gtxn struct {
	f         TxnFinal
	decidedAt time.Duration
	yes       map[string]bool // shard -> voted YES
}

// events is a min-heap of scheduled actions, FIFO among equal times.
type events []scheduled

type scheduled struct {
	at  time.Duration
	seq int
	fn  func()
}

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	return e[i].at < e[j].at || e[i].at == e[j].at && e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(scheduled)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

func (g *gen) after(d time.Duration, fn func()) {
	g.seq++
	heap.Push(&g.q, scheduled{at: g.now + d, seq: g.seq, fn: fn})
}

func (g *gen) jitter(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int63n(int64(hi-lo)+1))
}

func generate(cfg genConfig) *History {
	g := &gen{
		cfg: cfg, rng: rand.New(rand.NewSource(cfg.seed)),
		h:       &History{Version: FormatVersion, Rho: cfg.rho, Settled: true},
		holders: make(map[string]*glease), leases: make(map[string]*glease),
		shardSq: make(map[string]uint64), journal: make(map[string]map[string]string),
		lagNode: "n3", restartNode: "n2",
	}
	span := time.Duration(cfg.ops) * 2 * time.Millisecond // rough length of the run
	g.lagFrom = g.jitter(span/5, span/3)
	g.lagTo = g.lagFrom + g.jitter(50*time.Millisecond, 300*time.Millisecond)
	g.restartAt = g.jitter(span/2, span*2/3)
	g.after(0, g.arrive)
	g.after(10*time.Millisecond, g.sweep)
	for g.q.Len() > 0 {
		s := heap.Pop(&g.q).(scheduled)
		g.now = s.at
		s.fn()
	}
	g.final()
	return g.h
}

// entry appends one log entry; every node applies it (the lagging node skips it and
// later installs a snapshot; the restarting node replays recent entries once).
func (g *gen) entry(evs ...LeaseEvent) uint64 {
	g.index++
	for i := range evs {
		evs[i].Index = g.index
	}
	g.recent = append(g.recent, entry{g.index, evs})
	if len(g.recent) > 6 {
		g.recent = g.recent[1:]
	}
	for _, n := range fxNodes {
		if n == g.lagNode && g.now >= g.lagFrom && g.now < g.lagTo {
			g.lagging = true
			continue
		}
		if n == g.lagNode && g.lagging {
			g.lagging = false
			g.record(n, LeaseEvent{Index: g.index - 1, Kind: LeaseRestored})
		}
		if n == g.restartNode && g.restartAt > 0 && g.now >= g.restartAt && len(g.recent) > 3 {
			g.restartAt = 0
			replay := g.recent[len(g.recent)-4 : len(g.recent)-1]
			g.record(n, LeaseEvent{Index: replay[0].index - 1, Kind: LeaseRestored})
			for _, e := range replay {
				for _, ev := range e.evs {
					g.record(n, ev)
				}
			}
		}
		for _, ev := range evs {
			g.record(n, ev)
		}
	}
	return g.index
}

func (g *gen) record(node string, ev LeaseEvent) {
	ev.Node = node
	ev.At = g.now
	if node != "n1" {
		ev.At += g.jitter(0, 2*time.Millisecond)
	}
	ev.Players = slices.Clone(ev.Players)
	g.h.LeaseEvents = append(g.h.LeaseEvents, ev)
}

func (g *gen) shard(s string, kind ShardEventKind, tx string, ps []PlayerToken) {
	g.shardSq[s]++
	g.h.ShardEvents = append(g.h.ShardEvents, ShardEvent{Shard: s, Seq: g.shardSq[s], At: g.now, Kind: kind, TxID: tx, Players: ps})
	if g.journal[s] == nil {
		g.journal[s] = make(map[string]string)
	}
	switch kind {
	case ShardPrepared:
		g.journal[s][tx] = "prepared"
	case ShardCommitted:
		g.journal[s][tx] = "committed"
	case ShardAborted:
		g.journal[s][tx] = "aborted"
	}
}

// invoke records an op's invocation; the returned func records its return.
func (g *gen) invoke(op Op) func(res OpResult, tx, reason string, tokens map[string]uint64) {
	op.Invoke = g.now
	g.h.Ops = append(g.h.Ops, op)
	i := len(g.h.Ops) - 1
	return func(res OpResult, tx, reason string, tokens map[string]uint64) {
		o := &g.h.Ops[i]
		o.Return, o.Returned, o.Result, o.Reason, o.Tokens = g.now, true, res, reason, tokens
		if tx != "" {
			o.TxID = tx
		}
	}
}

// arrive starts a proposal and schedules the next one, until enough ops were invoked.
func (g *gen) arrive() {
	if len(g.h.Ops) >= g.cfg.ops {
		g.draining = true
		return
	}
	var ps []PlayerRef
	for k := 2 + g.rng.Intn(3); len(ps) < k; {
		s := g.rng.Intn(g.cfg.shards)
		p := g.rng.Intn(g.cfg.players)
		if g.rng.Float64() < g.cfg.hot {
			p = g.rng.Intn(2)
		}
		r := PlayerRef{Player: fmt.Sprintf("s%d-p%d", s, p), Shard: fmt.Sprintf("s%d", s)}
		if !slices.Contains(ps, r) {
			ps = append(ps, r)
		}
	}
	g.nextPID++
	proc := fmt.Sprintf("proposer%d", g.rng.Intn(4))
	g.propose(proc, fmt.Sprintf("P%d", g.nextPID), ps, g.jitter(200*time.Millisecond, 400*time.Millisecond))
	g.after(g.jitter(time.Millisecond, 5*time.Millisecond), g.arrive)
}
