package history

import (
	"fmt"
	"slices"
	"time"
)

// The simulated coordinator's behaviour: one transaction from Begin to DONE, and the
// life of a committed match's lease. See gen in gen_test.go.

const (
	genPrepareTimeout = 20 * time.Millisecond
	msec              = time.Millisecond
)

// propose invokes a Propose; answer is given when the txn is decided.
func (g *gen) propose(proc, pid string, ps []PlayerRef, ttl time.Duration) {
	ret := g.invoke(Op{Process: proc, Kind: OpPropose, ProposalID: pid, Players: ps, TTL: ttl})
	reply := func(t *gtxn) {
		var toks map[string]uint64
		res := ResultAborted
		if t.f.Outcome == OutcomeCommitted {
			res, toks = ResultCommitted, make(map[string]uint64)
			for _, p := range ps {
				toks[p.Player] = t.f.Token
			}
		}
		ret(res, t.f.TxID, t.f.Reason, toks)
	}
	switch r := g.rng.Float64(); {
	case r < 0.03: // lost before intake: unknown, then a retry with the same proposal id
		g.after(40*msec, func() { ret(ResultUnknown, "", "", nil) })
		g.after(50*msec, func() { g.propose(proc, pid, ps, ttl) })
	case r < 0.08: // indeterminate: the caller gives up, then a retry returns the first txn
		g.after(msec, func() {
			g.begin(pid, ps, ttl, func(t *gtxn) {
				ret(ResultUnknown, "", "", nil)
				g.after(5*msec, func() {
					ret = g.invoke(Op{Process: proc, Kind: OpPropose, ProposalID: pid, Players: ps, TTL: ttl})
					g.after(msec, func() { reply(t) })
				})
			})
		})
	default:
		g.after(msec, func() { g.begin(pid, ps, ttl, reply) })
	}
}

// begin applies Begin and starts the prepare round.
func (g *gen) begin(pid string, ps []PlayerRef, ttl time.Duration, answer func(*gtxn)) {
	g.nextTx++
	tx := fmt.Sprintf("tx%d", g.nextTx)
	t := &gtxn{f: TxnFinal{TxID: tx, ProposalID: pid, Shards: shardsOf(ps), Players: ps}, yes: make(map[string]bool)}
	g.txns = append(g.txns, t)
	if slices.ContainsFunc(ps, func(p PlayerRef) bool { return g.holders[p.Player] != nil }) {
		g.entry() // Begin fails whole: no lease changes
		t.f.State, t.f.Outcome, t.f.Reason, t.decidedAt = StateDone, OutcomeAborted, "PLAYER_LEASED", g.now
		g.after(msec, func() { answer(t) })
		return
	}
	idx := g.index + 1
	l := &glease{tx: tx, ttl: ttl, live: true}
	onShard := make(map[string][]PlayerToken)
	for _, p := range ps {
		tok := PlayerToken{Player: p.Player, Token: idx}
		l.players = append(l.players, tok)
		onShard[p.Shard] = append(onShard[p.Shard], tok)
	}
	g.entry(LeaseEvent{Kind: LeaseGranted, TxID: tx, Players: l.players, TTL: ttl})
	t.f.State, t.f.Token = StatePreparing, idx
	g.leases[tx] = l
	for _, p := range l.players {
		g.holders[p.Player] = l
	}
	var last time.Duration
	slow := false
	for _, s := range t.f.Shards {
		if g.rng.Float64() < 0.03 { // Prepare overtaken by the Abort: tombstone, then NO
			slow = true
			g.after(genPrepareTimeout+g.jitter(5*msec, 10*msec), func() { g.shard(s, ShardVotedNo, tx, nil) })
			continue
		}
		d := g.jitter(msec, 4*msec)
		last = max(last, d)
		g.after(d, func() {
			if g.rng.Float64() < 0.05 {
				g.shard(s, ShardVotedNo, tx, nil)
				return
			}
			g.shard(s, ShardPrepared, tx, onShard[s])
			t.yes[s] = true
		})
	}
	decideIn, reason := last+msec, "SHARD_REJECTED"
	if slow {
		decideIn, reason = genPrepareTimeout, "SHARD_TIMEOUT"
	}
	g.after(decideIn, func() { g.decide(t, l, onShard, reason, answer) })
}

// decide logs the decision, answers the proposer, and delivers it to every shard.
func (g *gen) decide(t *gtxn, l *glease, onShard map[string][]PlayerToken, reason string, answer func(*gtxn)) {
	commit := len(t.yes) == len(t.f.Shards)
	t.decidedAt = g.now
	if commit {
		g.entry(LeaseEvent{Kind: LeaseActivated, TxID: l.tx, Players: l.players, TTL: l.ttl})
		t.f.State, t.f.Outcome = StateCommitted, OutcomeCommitted
		l.active, l.lastStart = true, g.now
		g.host(l)
	} else {
		g.entry(LeaseEvent{Kind: LeaseFreed, TxID: l.tx, Players: l.players})
		t.f.State, t.f.Outcome, t.f.Reason = StateAborted, OutcomeAborted, reason
		g.free(l)
	}
	g.after(msec, func() { answer(t) })
	for _, s := range t.f.Shards {
		g.after(g.jitter(msec, 3*msec), func() {
			if commit {
				g.shard(s, ShardCommitted, l.tx, onShard[s])
			} else {
				g.shard(s, ShardAborted, l.tx, nil)
			}
			g.after(msec, func() {
				g.entry() // Acked
				t.f.Acked = append(t.f.Acked, s)
				if len(t.f.Acked) == len(t.f.Shards) {
					t.f.State = StateDone
				}
			})
		})
	}
}

func (g *gen) free(l *glease) {
	l.live = false
	for _, p := range l.players {
		if g.holders[p.Player] == l {
			delete(g.holders, p.Player)
		}
	}
	delete(g.leases, l.tx)
}

// host renews a committed match every ttl/3 a few times, then releases it or walks
// away and lets it expire.
func (g *gen) host(l *glease) {
	proc := fmt.Sprintf("host%d", g.rng.Intn(8))
	every := l.ttl / 3
	failed := false
	var step func(left int)
	step = func(left int) {
		if g.draining || failed {
			return
		}
		if left == 0 {
			switch r := g.rng.Float64(); {
			case r < 0.5:
				g.release(proc, l)
			case r < 0.6: // comes back after the lease expired: the release fails
				g.after(l.ttl+l.ttl/2, func() { g.release(proc, l) })
			}
			return
		}
		g.renew(proc, l, &failed)
		g.after(every, func() { step(left - 1) })
	}
	g.after(every, func() { step(g.rng.Intn(6)) })
}

func (g *gen) renew(proc string, l *glease, failed *bool) {
	ret := g.invoke(Op{Process: proc, Kind: OpRenew, TxID: l.tx})
	r := g.rng.Float64()
	if r < 0.08 { // lost: never applied
		g.after(30*msec, func() { ret(ResultUnknown, "", "", nil) })
		return
	}
	g.after(msec, func() {
		applied := l.live && l.active
		if applied {
			l.renewSeq++
			l.lastStart = g.now
			g.entry(LeaseEvent{Kind: LeaseRenewed, TxID: l.tx, Players: l.players, TTL: l.ttl, RenewSeq: l.renewSeq})
		} else {
			g.entry() // renew of a lease that is gone: no change
		}
		if r < 0.15 { // applied (or not), but the reply is lost
			g.after(29*msec, func() { ret(ResultUnknown, "", "", nil) })
			return
		}
		g.after(msec, func() {
			if applied {
				ret(ResultOK, "", "", nil)
			} else {
				ret(ResultFail, "", "", nil)
				*failed = true
			}
		})
	})
}

func (g *gen) release(proc string, l *glease) {
	ret := g.invoke(Op{Process: proc, Kind: OpRelease, TxID: l.tx})
	g.after(msec, func() {
		res := ResultFail
		if l.live {
			g.entry(LeaseEvent{Kind: LeaseReleased, TxID: l.tx, Players: l.players})
			g.free(l)
			res = ResultOK
		} else {
			g.entry()
		}
		g.after(msec, func() { ret(res, "", "", nil) })
	})
}

// sweep is the leader's expiry timer: every lease whose ttl·(1+ρ) passed since its
// last renew expires, all in one entry.
func (g *gen) sweep() {
	if g.draining && g.q.Len() == 0 {
		return // nothing else will happen: the run has settled
	}
	var evs []LeaseEvent
	var due []*glease
	for _, tx := range sortedKeys(g.leases) {
		l := g.leases[tx]
		if l.active && g.now >= l.lastStart+time.Duration(float64(l.ttl)*(1+g.cfg.rho)) {
			evs = append(evs, LeaseEvent{Kind: LeaseExpired, TxID: tx, Players: l.players, RenewSeq: l.renewSeq})
			due = append(due, l)
		}
	}
	if len(evs) > 0 {
		g.entry(evs...)
		for _, l := range due {
			g.free(l)
		}
	}
	g.after(10*msec, g.sweep)
}

// final records every node's and shard's state at the end, compacting old txns.
func (g *gen) final() {
	var txns []TxnFinal
	for _, t := range g.txns {
		if t.f.State == StateDone && g.now-t.decidedAt > g.cfg.retention {
			continue
		}
		txns = append(txns, t.f)
	}
	var leases []LeaseFinal
	for _, tx := range sortedKeys(g.leases) {
		l := g.leases[tx]
		state := StateReserved
		if l.active {
			state = StateActive
		}
		for _, p := range l.players {
			leases = append(leases, LeaseFinal{Player: p.Player, TxID: tx, Token: p.Token, State: state})
		}
	}
	f := Final{Nodes: make(map[string]NodeFinal), Shards: make(map[string]ShardFinal)}
	for _, n := range fxNodes {
		f.Nodes[n] = NodeFinal{Txns: txns, Leases: leases, AppliedIndex: g.index}
	}
	for _, s := range sortedKeys(g.journal) {
		var sf ShardFinal
		for _, tx := range sortedKeys(g.journal[s]) {
			switch g.journal[s][tx] {
			case "prepared":
				sf.Prepared = append(sf.Prepared, tx)
			case "committed":
				sf.Committed = append(sf.Committed, tx)
			case "aborted":
				sf.Aborted = append(sf.Aborted, tx)
			}
		}
		f.Shards[s] = sf
	}
	g.h.Final = f.Clone()
}
