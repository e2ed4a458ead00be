package history

import (
	"fmt"
	"math/rand"
	"slices"
	"time"
)

// The mutations of mutation_test.go: each breaks a clean generated history in one
// place, the way a buggy coordinator, shard or recorder would.

func mutCommitAbort(h *History, rng *rand.Rand) bool {
	t, ok := multiShardCommit(h, rng)
	if !ok {
		return false
	}
	s := t.Shards[1]
	for i, ev := range h.ShardEvents {
		if ev.Shard == s && ev.TxID == t.TxID && ev.Kind == ShardCommitted {
			h.ShardEvents[i].Kind = ShardAborted
		}
	}
	editJournal(h, s, func(sf *ShardFinal) {
		sf.Committed, sf.Aborted = remove(sf.Committed, t.TxID), append(sf.Aborted, t.TxID)
	})
	return true
}

func mutInDoubt(h *History, rng *rand.Rand) bool {
	t, ok := multiShardCommit(h, rng)
	if !ok {
		return false
	}
	h.ShardEvents = slices.DeleteFunc(h.ShardEvents, func(ev ShardEvent) bool {
		return ev.Shard == t.Shards[0] && ev.TxID == t.TxID && ev.Kind == ShardCommitted
	})
	editJournal(h, t.Shards[0], func(sf *ShardFinal) {
		sf.Committed, sf.Prepared = remove(sf.Committed, t.TxID), append(sf.Prepared, t.TxID)
	})
	return true
}

func mutCommitLost(h *History, rng *rand.Rand) bool {
	t, ok := multiShardCommit(h, rng)
	if !ok {
		return false
	}
	s := t.Shards[len(t.Shards)-1]
	h.ShardEvents = slices.DeleteFunc(h.ShardEvents, func(ev ShardEvent) bool {
		return ev.Shard == s && ev.TxID == t.TxID && ev.Kind == ShardCommitted
	})
	editJournal(h, s, func(sf *ShardFinal) { sf.Committed = remove(sf.Committed, t.TxID) })
	return true
}

// canonical returns n1's lease events (n1 applies every entry exactly once).
func canonical(h *History) []LeaseEvent {
	var evs []LeaseEvent
	for _, ev := range h.LeaseEvents {
		if ev.Node == "n1" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// editAll applies edit to every node's copy of the event (same index, kind, txid).
func editAll(h *History, like LeaseEvent, edit func(*LeaseEvent)) {
	for i := range h.LeaseEvents {
		ev := &h.LeaseEvents[i]
		if ev.Index == like.Index && ev.Kind == like.Kind && ev.TxID == like.TxID {
			edit(ev)
		}
	}
}

func mutDoubleGrant(h *History, rng *rand.Rand) bool {
	evs := canonical(h)
	type cand struct{ held, later LeaseEvent }
	var cands []cand
	for i, g := range evs {
		if g.Kind != LeaseGranted {
			continue
		}
		// the next grant of another txn while g's lease is still live
		for _, e := range evs[i+1:] {
			if e.TxID == g.TxID && (e.Kind == LeaseFreed || e.Kind == LeaseReleased || e.Kind == LeaseExpired) {
				break
			}
			if e.Kind == LeaseGranted && e.TxID != g.TxID {
				cands = append(cands, cand{g, e})
				break
			}
		}
	}
	c, ok := pick(rng, cands, func(cand) bool { return true })
	if !ok {
		return false
	}
	p := c.held.Players[0].Player
	editAll(h, c.later, func(ev *LeaseEvent) { ev.Players = append(slices.Clone(ev.Players), PlayerToken{p, ev.Index}) })
	return true
}

func mutCommitUngranted(h *History, rng *rand.Rand) bool {
	t, ok := pick(rng, h.Final.Nodes["n1"].Txns, func(t TxnFinal) bool { return t.Reason == "PLAYER_LEASED" })
	if !ok {
		return false
	}
	p := t.Players[0]
	seq := uint64(1 << 40)
	h.ShardEvents = append(h.ShardEvents,
		ShardEvent{Shard: p.Shard, Seq: seq, Kind: ShardPrepared, TxID: t.TxID, Players: []PlayerToken{{p.Player, 0}}},
		ShardEvent{Shard: p.Shard, Seq: seq + 1, Kind: ShardCommitted, TxID: t.TxID, Players: []PlayerToken{{p.Player, 0}}})
	return true
}

func mutFinalLease(h *History, rng *rand.Rand) bool {
	nf := h.Final.Nodes["n2"]
	nf.Leases = append(slices.Clone(nf.Leases), LeaseFinal{Player: fmt.Sprintf("ghost%d", rng.Intn(9)), TxID: "tx-ghost", Token: 1, State: StateActive})
	h.Final.Nodes["n2"] = nf
	return true
}

func mutFlipDecision(h *History, rng *rand.Rand) bool {
	final := h.Final.Nodes["n3"].Txns
	op, ok := pick(rng, h.Ops, func(op Op) bool {
		return op.Result == ResultCommitted && slices.ContainsFunc(final, func(t TxnFinal) bool { return t.TxID == op.TxID })
	})
	if !ok {
		return false
	}
	i := slices.IndexFunc(final, func(t TxnFinal) bool { return t.TxID == op.TxID })
	final[i].Outcome = OutcomeAborted
	return true
}

func mutSecondTxID(h *History, rng *rand.Rand) bool {
	op, ok := pick(rng, h.Ops, func(op Op) bool { return op.Kind == OpPropose && op.Result.Definite() })
	if !ok {
		return false
	}
	op.TxID = "tx-second"
	op.Invoke, op.Return = op.Return+time.Millisecond, op.Return+2*time.Millisecond
	h.Ops = append(h.Ops, op)
	return true
}

func mutAbortedActivated(h *History, rng *rand.Rand) bool {
	freed, ok := pick(rng, canonical(h), func(ev LeaseEvent) bool { return ev.Kind == LeaseFreed })
	if !ok {
		return false
	}
	editAll(h, freed, func(ev *LeaseEvent) { ev.Kind = LeaseActivated })
	return true
}

func mutGrantToken(h *History, rng *rand.Rand) bool {
	type cand struct {
		later  LeaseEvent
		player string
		prev   uint64
	}
	var cands []cand
	last := make(map[string]uint64)
	for _, ev := range canonical(h) {
		if ev.Kind != LeaseGranted {
			continue
		}
		for _, p := range ev.Players {
			if prev, ok := last[p.Player]; ok {
				cands = append(cands, cand{ev, p.Player, prev})
			}
			last[p.Player] = p.Token
		}
	}
	c, ok := pick(rng, cands, func(cand) bool { return true })
	if !ok {
		return false
	}
	editAll(h, c.later, func(ev *LeaseEvent) {
		ev.Players = slices.Clone(ev.Players)
		for i := range ev.Players {
			if ev.Players[i].Player == c.player {
				ev.Players[i].Token = c.prev
			}
		}
	})
	return true
}

func mutShardToken(h *History, rng *rand.Rand) bool {
	// two commits of one player at one shard: swap their order
	type key struct{ shard, player string }
	first := make(map[key]int)
	var pairs [][2]int
	for i, ev := range h.ShardEvents {
		if ev.Kind != ShardCommitted {
			continue
		}
		for _, p := range ev.Players {
			k := key{ev.Shard, p.Player}
			if j, ok := first[k]; ok {
				pairs = append(pairs, [2]int{j, i})
			} else {
				first[k] = i
			}
		}
	}
	pr, ok := pick(rng, pairs, func([2]int) bool { return true })
	if !ok {
		return false
	}
	a, b := &h.ShardEvents[pr[0]], &h.ShardEvents[pr[1]]
	a.Seq, b.Seq = b.Seq, a.Seq
	return true
}

func mutLeftPreparing(h *History, rng *rand.Rand) bool {
	txns := h.Final.Nodes["n1"].Txns
	if len(txns) == 0 {
		return false
	}
	i := rng.Intn(len(txns))
	txns[i].State, txns[i].Outcome = StatePreparing, ""
	return true
}

func mutNeverReturned(h *History, rng *rand.Rand) bool {
	i := rng.Intn(len(h.Ops))
	h.Ops[i].Returned, h.Ops[i].Return, h.Ops[i].Result = false, 0, ""
	return true
}

func mutUnknownUndecided(h *History, rng *rand.Rand) bool {
	op, ok := pick(rng, h.Ops, func(op Op) bool { return op.Kind == OpPropose })
	if !ok {
		return false
	}
	op.ProposalID, op.TxID, op.Result, op.Tokens = "P-lost", "", ResultUnknown, nil
	h.Ops = append(h.Ops, op)
	return true
}

func mutDuplicate(kind ShardEventKind) func(*History, *rand.Rand) bool {
	return func(h *History, rng *rand.Rand) bool {
		ev, ok := pick(rng, h.ShardEvents, func(ev ShardEvent) bool { return ev.Kind == kind })
		if !ok {
			return false
		}
		ev.Seq, ev.At = 1<<40, ev.At+time.Second // a redelivery applied again, later
		h.ShardEvents = append(h.ShardEvents, ev)
		return true
	}
}

func mutVoteFlip(h *History, rng *rand.Rand) bool {
	ev, ok := pick(rng, h.ShardEvents, func(ev ShardEvent) bool { return ev.Kind == ShardPrepared })
	if !ok {
		return false
	}
	ev.Seq, ev.Kind, ev.Players = 1<<40, ShardVotedNo, nil
	h.ShardEvents = append(h.ShardEvents, ev)
	return true
}

// mutEarlyExpiry moves an expiry to 10ms before ttl·(1−ρ) after the last renew the
// holder saw succeed (or the first attempt of its proposal).
func mutEarlyExpiry(h *History, rng *rand.Rand) bool {
	exp, ok := pick(rng, canonical(h), func(ev LeaseEvent) bool { return ev.Kind == LeaseExpired })
	if !ok {
		return false
	}
	var pid string
	var ttl time.Duration
	for _, op := range h.Ops {
		if op.Kind == OpPropose && op.TxID == exp.TxID {
			pid, ttl = op.ProposalID, op.TTL
		}
	}
	start := time.Duration(-1)
	for _, op := range h.Ops {
		if op.Kind == OpPropose && op.ProposalID == pid && (start < 0 || op.Invoke < start) {
			start = op.Invoke
		}
	}
	for _, op := range h.Ops {
		if op.Kind == OpRenew && op.TxID == exp.TxID && op.Result == ResultOK && op.Return < exp.At {
			start = max(start, op.Invoke)
		}
	}
	if pid == "" || start < 0 {
		return false
	}
	at := start + time.Duration(float64(ttl)*(1-h.Rho)) - 10*time.Millisecond
	editAll(h, exp, func(ev *LeaseEvent) { ev.At = at })
	return true
}

func mutRenewAfterExpiry(h *History, rng *rand.Rand) bool {
	exp, ok := pick(rng, canonical(h), func(ev LeaseEvent) bool { return ev.Kind == LeaseExpired })
	if !ok {
		return false
	}
	var last uint64
	for _, ev := range h.LeaseEvents {
		last = max(last, ev.Index)
	}
	for _, n := range fxNodes {
		h.LeaseEvents = append(h.LeaseEvents, LeaseEvent{Node: n, Index: last + 1, At: exp.At + time.Second,
			Kind: LeaseRenewed, TxID: exp.TxID, Players: exp.Players, RenewSeq: exp.RenewSeq + 1})
	}
	return true
}

func mutDivergent(h *History, rng *rand.Rand) bool {
	i := rng.Intn(len(h.LeaseEvents))
	for ; h.LeaseEvents[i].Node != "n2" || h.LeaseEvents[i].Kind == LeaseRestored; i = (i + 1) % len(h.LeaseEvents) {
	}
	h.LeaseEvents[i].TxID += "-other"
	return true
}

func mutSkip(h *History, rng *rand.Rand) bool {
	// an n1 entry with one event, not n1's last
	count := make(map[uint64]int)
	var last uint64
	for _, ev := range h.LeaseEvents {
		if ev.Node == "n1" {
			count[ev.Index]++
			last = max(last, ev.Index)
		}
	}
	idx, ok := pick(rng, sortedKeys64(count), func(i uint64) bool { return count[i] == 1 && i != last })
	if !ok {
		return false
	}
	dropLease(h, "n1", idx)
	return true
}
