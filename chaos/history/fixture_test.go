package history

import (
	"slices"
	"testing"
	"time"
)

// The hand-built fixture: three coordinator nodes, shards sA (players a1, a2) and sB
// (b1, b2), ρ = 1%, settled. Log indexes are spaced by 10 so tests can insert entries.
//
//	tx1 (P1) a1+b1 ttl 300ms: granted @10, both shards prepare, activated @20,
//	    proposer told committed (tokens 10), both shards commit.
//	tx2 (P2) a1+b2: Begin @30 fails PLAYER_LEASED (a1 held by tx1): no lease event.
//	tx1 renewed @40 by host1 (renew invoked at 100ms, ok).
//	tx3 (P3) a2+b2: granted @50, sA prepares, sB votes NO, freed @60, told aborted,
//	    both shards apply the abort.
//	tx1 expired @70 at 410ms (earliest allowed: 100ms + 300ms·0.99 = 397ms).
//	tx4 (P4) a1+b1: granted @80 (tokens 80), activated @90, committed at both shards,
//	    released @100 by host1.
//
// n3 lags: it has applied up to index 90, so its final lease table still holds tx4.
var (
	fxNodes = []string{"n1", "n2", "n3"}
	fxTTL   = 300 * time.Millisecond
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func pt(p string, tok uint64) PlayerToken { return PlayerToken{Player: p, Token: tok} }

func ref(p, s string) PlayerRef { return PlayerRef{Player: p, Shard: s} }

// addLease appends ev as applied by each node, node i applying it i ms after n1.
func addLease(h *History, ev LeaseEvent, nodes ...string) {
	for _, n := range nodes {
		e := ev
		e.Node = n
		e.At += ms(float64(slices.Index(fxNodes, n)))
		e.Players = slices.Clone(ev.Players)
		h.LeaseEvents = append(h.LeaseEvents, e)
	}
}

// addShard appends a shard event with the next Seq for that shard.
func addShard(h *History, shard string, atMs float64, kind ShardEventKind, tx string, ps ...PlayerToken) {
	var seq uint64
	for _, ev := range h.ShardEvents {
		if ev.Shard == shard {
			seq = max(seq, ev.Seq)
		}
	}
	h.ShardEvents = append(h.ShardEvents, ShardEvent{Shard: shard, Seq: seq + 1, At: ms(atMs), Kind: kind, TxID: tx, Players: ps})
}

func le(idx uint64, atMs float64, kind LeaseEventKind, tx string, ps ...PlayerToken) LeaseEvent {
	return LeaseEvent{Index: idx, At: ms(atMs), Kind: kind, TxID: tx, Players: ps}
}

func fixture() *History {
	h := &History{Version: FormatVersion, Rho: 0.01, Settled: true}
	all := fxNodes
	propose := func(proc, pid, tx string, inv, ret float64, res OpResult, reason string, tokens map[string]uint64, ps ...PlayerRef) {
		h.Ops = append(h.Ops, Op{Process: proc, Kind: OpPropose, ProposalID: pid, TxID: tx, Players: ps, TTL: fxTTL,
			Invoke: ms(inv), Return: ms(ret), Returned: true, Result: res, Reason: reason, Tokens: tokens})
	}
	withTTL := func(ev LeaseEvent) LeaseEvent { ev.TTL = fxTTL; return ev }

	// tx1
	propose("prop1", "P1", "tx1", 10, 15, ResultCommitted, "", map[string]uint64{"a1": 10, "b1": 10}, ref("a1", "sA"), ref("b1", "sB"))
	addLease(h, withTTL(le(10, 11, LeaseGranted, "tx1", pt("a1", 10), pt("b1", 10))), all...)
	addShard(h, "sA", 12, ShardPrepared, "tx1", pt("a1", 10))
	addShard(h, "sB", 12, ShardPrepared, "tx1", pt("b1", 10))
	addLease(h, withTTL(le(20, 14, LeaseActivated, "tx1", pt("a1", 10), pt("b1", 10))), all...)
	addShard(h, "sA", 16, ShardCommitted, "tx1", pt("a1", 10))
	addShard(h, "sB", 16, ShardCommitted, "tx1", pt("b1", 10))
	// tx2: Begin at index 30 fails whole; no lease events.
	propose("prop2", "P2", "tx2", 20, 22, ResultAborted, "PLAYER_LEASED", nil, ref("a1", "sA"), ref("b2", "sB"))
	// renew tx1
	h.Ops = append(h.Ops, Op{Process: "host1", Kind: OpRenew, TxID: "tx1", Invoke: ms(100), Return: ms(102), Returned: true, Result: ResultOK})
	ren := withTTL(le(40, 101, LeaseRenewed, "tx1", pt("a1", 10), pt("b1", 10)))
	ren.RenewSeq = 1
	addLease(h, ren, all...)
	// tx3
	propose("prop1", "P3", "tx3", 150, 155, ResultAborted, "SHARD_REJECTED", nil, ref("a2", "sA"), ref("b2", "sB"))
	addLease(h, withTTL(le(50, 151, LeaseGranted, "tx3", pt("a2", 50), pt("b2", 50))), all...)
	addShard(h, "sA", 152, ShardPrepared, "tx3", pt("a2", 50))
	addShard(h, "sB", 152, ShardVotedNo, "tx3")
	addLease(h, le(60, 154, LeaseFreed, "tx3", pt("a2", 50), pt("b2", 50)), all...)
	addShard(h, "sA", 156, ShardAborted, "tx3")
	addShard(h, "sB", 156, ShardAborted, "tx3")
	// tx1 expires
	exp := le(70, 410, LeaseExpired, "tx1", pt("a1", 10), pt("b1", 10))
	exp.RenewSeq = 1
	addLease(h, exp, all...)
	// tx4
	propose("prop2", "P4", "tx4", 420, 425, ResultCommitted, "", map[string]uint64{"a1": 80, "b1": 80}, ref("a1", "sA"), ref("b1", "sB"))
	addLease(h, withTTL(le(80, 421, LeaseGranted, "tx4", pt("a1", 80), pt("b1", 80))), all...)
	addShard(h, "sA", 422, ShardPrepared, "tx4", pt("a1", 80))
	addShard(h, "sB", 422, ShardPrepared, "tx4", pt("b1", 80))
	addLease(h, withTTL(le(90, 424, LeaseActivated, "tx4", pt("a1", 80), pt("b1", 80))), all...)
	addShard(h, "sA", 426, ShardCommitted, "tx4", pt("a1", 80))
	addShard(h, "sB", 426, ShardCommitted, "tx4", pt("b1", 80))
	h.Ops = append(h.Ops, Op{Process: "host1", Kind: OpRelease, TxID: "tx4", Invoke: ms(500), Return: ms(502), Returned: true, Result: ResultOK})
	addLease(h, le(100, 501, LeaseReleased, "tx4", pt("a1", 80), pt("b1", 80)), "n1", "n2")

	txns := []TxnFinal{
		{TxID: "tx1", ProposalID: "P1", State: StateDone, Outcome: OutcomeCommitted, Shards: []string{"sA", "sB"}, Acked: []string{"sA", "sB"},
			Players: []PlayerRef{ref("a1", "sA"), ref("b1", "sB")}, Token: 10},
		{TxID: "tx2", ProposalID: "P2", State: StateDone, Outcome: OutcomeAborted, Reason: "PLAYER_LEASED", Shards: []string{"sA", "sB"},
			Players: []PlayerRef{ref("a1", "sA"), ref("b2", "sB")}},
		{TxID: "tx3", ProposalID: "P3", State: StateDone, Outcome: OutcomeAborted, Reason: "SHARD_REJECTED", Shards: []string{"sA", "sB"}, Acked: []string{"sA", "sB"},
			Players: []PlayerRef{ref("a2", "sA"), ref("b2", "sB")}, Token: 50},
		{TxID: "tx4", ProposalID: "P4", State: StateDone, Outcome: OutcomeCommitted, Shards: []string{"sA", "sB"}, Acked: []string{"sA", "sB"},
			Players: []PlayerRef{ref("a1", "sA"), ref("b1", "sB")}, Token: 80},
	}
	h.Final = Final{
		Nodes: map[string]NodeFinal{
			"n1": {Txns: txns, AppliedIndex: 100},
			"n2": {Txns: txns, AppliedIndex: 100},
			"n3": {Txns: txns, AppliedIndex: 90, Leases: []LeaseFinal{
				{Player: "a1", TxID: "tx4", Token: 80, State: StateActive},
				{Player: "b1", TxID: "tx4", Token: 80, State: StateActive},
			}},
		},
		Shards: map[string]ShardFinal{
			"sA": {Committed: []string{"tx1", "tx4"}, Aborted: []string{"tx3"}},
			"sB": {Committed: []string{"tx1", "tx4"}, Aborted: []string{"tx3"}},
		},
	}
	return h.Clone() // no aliasing between nodes' txn slices
}

// checkers maps every invariant id to its checker.
var checkers = map[string]func(*History) []Violation{
	LOG: CheckLog, I1: CheckI1, I2: CheckI2, I3: CheckI3, I4: CheckI4, I5: CheckI5, I6: CheckI6, I7: CheckI7,
}

// expect asserts that check flags inv in h at least once.
func expect(t *testing.T, h *History, inv string) []Violation {
	t.Helper()
	vs := checkers[inv](h)
	for _, v := range vs {
		if v.Invariant != inv {
			t.Errorf("Check%s returned a %s violation: %v", inv, v.Invariant, v)
		}
	}
	if len(vs) == 0 {
		t.Fatalf("Check%s missed the broken history; full report:\n%s", inv, Check(h))
	}
	for _, v := range vs {
		t.Logf("caught: %v", v)
	}
	return vs
}

// expectClean asserts that check finds nothing in h.
func expectClean(t *testing.T, h *History, inv string) {
	t.Helper()
	if vs := checkers[inv](h); len(vs) > 0 {
		t.Fatalf("Check%s flagged a correct history: %v", inv, vs)
	}
}

// onNodes edits every copy of the lease event at idx with kind and tx.
func onNodes(h *History, idx uint64, kind LeaseEventKind, tx string, edit func(*LeaseEvent)) {
	for i := range h.LeaseEvents {
		ev := &h.LeaseEvents[i]
		if ev.Index == idx && ev.Kind == kind && ev.TxID == tx {
			edit(ev)
		}
	}
}

// shardEvent returns the shard's event of kind for tx.
func shardEvent(t *testing.T, h *History, shard string, kind ShardEventKind, tx string) *ShardEvent {
	t.Helper()
	for i := range h.ShardEvents {
		ev := &h.ShardEvents[i]
		if ev.Shard == shard && ev.Kind == kind && ev.TxID == tx {
			return ev
		}
	}
	t.Fatalf("no %s %s event at %s", kind, tx, shard)
	return nil
}

// nodeTxnOf returns the node's final txn.
func nodeTxnOf(t *testing.T, h *History, node, tx string) *TxnFinal {
	t.Helper()
	for i := range h.Final.Nodes[node].Txns {
		if tf := &h.Final.Nodes[node].Txns[i]; tf.TxID == tx {
			return tf
		}
	}
	t.Fatalf("node %s has no txn %s", node, tx)
	return nil
}
