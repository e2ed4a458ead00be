package history

import (
	"slices"
	"testing"
)

func TestI3(t *testing.T) {
	t.Run("proposal id with two txids", func(t *testing.T) {
		h := fixture()
		retry := h.Ops[0]
		retry.TxID, retry.Invoke, retry.Return = "tx1b", ms(30), ms(31)
		h.Ops = append(h.Ops, retry)
		vs := expect(t, h, I3)
		if vs[0].TxID != "tx1b" {
			t.Errorf("violation should name the second txid: %v", vs[0])
		}
	})
	t.Run("proposal id with two txids across nodes", func(t *testing.T) {
		h := fixture()
		nodeTxnOf(t, h, "n2", "tx3").ProposalID = "P1"
		expect(t, h, I3)
	})
	t.Run("two definite answers to one proposal", func(t *testing.T) {
		h := fixture()
		retry := h.Ops[0]
		retry.Result, retry.Tokens, retry.Invoke, retry.Return = ResultAborted, nil, ms(30), ms(31)
		h.Ops = append(h.Ops, retry)
		expect(t, h, I3)
	})
	t.Run("node final differs from the answer", func(t *testing.T) {
		h := fixture()
		nodeTxnOf(t, h, "n2", "tx3").Outcome = OutcomeCommitted
		vs := expect(t, h, I3)
		if !slices.ContainsFunc(vs, func(v Violation) bool { return v.Node == "n2" }) {
			t.Errorf("a violation should name n2: %v", vs)
		}
	})
	t.Run("answer not in a node's log after settle", func(t *testing.T) {
		h := fixture()
		tf := nodeTxnOf(t, h, "n3", "tx4")
		tf.State, tf.Outcome = StatePreparing, ""
		expect(t, h, I3)
	})
	t.Run("told aborted, lease log committed", func(t *testing.T) {
		h := fixture()
		onNodes(h, 60, LeaseFreed, "tx3", func(ev *LeaseEvent) { ev.Kind = LeaseActivated })
		expect(t, h, I3)
	})
	t.Run("told committed, lease log aborted", func(t *testing.T) {
		h := fixture()
		onNodes(h, 90, LeaseActivated, "tx4", func(ev *LeaseEvent) { ev.Kind = LeaseFreed })
		expect(t, h, I3)
	})
	t.Run("told aborted, a shard committed", func(t *testing.T) {
		h := fixture()
		h.Final.Nodes = nil // compacted everywhere: only the answer remains
		addShard(h, "sA", 157, ShardCommitted, "tx3", pt("a2", 50))
		expect(t, h, I3)
	})
	t.Run("told committed, a shard never applied it", func(t *testing.T) {
		h := fixture()
		h.Final.Nodes = nil
		h.ShardEvents = slices.DeleteFunc(h.ShardEvents, func(ev ShardEvent) bool {
			return ev.Shard == "sB" && ev.TxID == "tx1" && ev.Kind == ShardCommitted
		})
		sb := h.Final.Shards["sB"]
		sb.Committed = []string{"tx4"}
		h.Final.Shards["sB"] = sb
		expect(t, h, I3)
	})
	t.Run("compacted txns are fine", func(t *testing.T) {
		h := fixture()
		for _, n := range fxNodes {
			nf := h.Final.Nodes[n]
			nf.Txns = slices.DeleteFunc(nf.Txns, func(tf TxnFinal) bool { return tf.TxID != "tx4" })
			h.Final.Nodes[n] = nf
		}
		expectClean(t, h, I3)
		expectClean(t, h, I1)
		expectClean(t, h, I5)
	})
}

func TestI5(t *testing.T) {
	t.Run("txn left PREPARING after settle", func(t *testing.T) {
		h := fixture()
		for _, n := range fxNodes {
			nf := h.Final.Nodes[n]
			nf.Txns = append(nf.Txns, TxnFinal{TxID: "tx5", ProposalID: "P5", State: StatePreparing, Shards: []string{"sA"}})
			h.Final.Nodes[n] = nf
		}
		vs := expect(t, h, I5)
		if len(vs) != 1 || vs[0].TxID != "tx5" {
			t.Errorf("want one violation for tx5 naming every node: %v", vs)
		}
		h.Settled = false
		expectClean(t, h, I5)
	})
	t.Run("decided but never acked", func(t *testing.T) {
		h := fixture()
		tf := nodeTxnOf(t, h, "n1", "tx4")
		tf.State, tf.Acked = StateCommitted, []string{"sA"}
		expect(t, h, I5)
	})
	t.Run("op never returned", func(t *testing.T) {
		h := fixture()
		h.Ops[1].Returned, h.Ops[1].Result, h.Ops[1].Return = false, "", 0
		expect(t, h, I5)
	})
	t.Run("unknown proposal never decided", func(t *testing.T) {
		h := fixture()
		h.Ops = append(h.Ops, Op{Process: "prop3", Kind: OpPropose, ProposalID: "P9", Players: []PlayerRef{ref("a2", "sA")},
			Invoke: ms(600), Return: ms(700), Returned: true, Result: ResultUnknown})
		expect(t, h, I5)
	})
	t.Run("unknown proposal decided later is fine", func(t *testing.T) {
		h := fixture()
		h.Ops[0].Result, h.Ops[0].TxID, h.Ops[0].Tokens = ResultUnknown, "", nil
		expectClean(t, h, I5) // node finals hold P1's decision
		h.Final.Nodes = nil
		expect(t, h, I5)
		h.Ops = append(h.Ops, Op{Process: "prop1", Kind: OpPropose, ProposalID: "P1", Invoke: ms(800), Return: ms(801),
			Returned: true, Result: ResultCommitted, TxID: "tx1"})
		expectClean(t, h, I5) // a retry got the answer
	})
}
