package history

import (
	"slices"
	"testing"
)

func TestFixtureIsClean(t *testing.T) {
	h := fixture()
	for _, inv := range Invariants {
		expectClean(t, h, inv)
	}
	r := Check(h)
	if !r.OK() {
		t.Fatalf("fixture:\n%s", r)
	}
	if len(r.Notes) != 0 {
		t.Errorf("fixture should need no notes: %v", r.Notes)
	}
	want := map[string]int{"ops": 6, "propose": 4, "renew": 1, "release": 1, "committed": 2, "aborted": 2, "ok": 2,
		"granted": 3, "activated": 2, "renewed": 1, "expired": 1, "freed": 1, "released": 1, "log_entries": 9, "txns": 4}
	for k, n := range want {
		if r.Stats[k] != n {
			t.Errorf("stat %s = %d, want %d", k, r.Stats[k], n)
		}
	}
}

func TestI1(t *testing.T) {
	t.Run("commit at A, abort at B", func(t *testing.T) {
		h := fixture()
		shardEvent(t, h, "sB", ShardCommitted, "tx1").Kind = ShardAborted
		expect(t, h, I1)
		sb := h.Final.Shards["sB"]
		sb.Committed, sb.Aborted = []string{"tx4"}, []string{"tx1", "tx3"}
		h.Final.Shards["sB"] = sb
		expect(t, h, I1)
	})
	t.Run("journals disagree", func(t *testing.T) {
		h := fixture()
		h.ShardEvents = nil // a history with shard journals only
		expectClean(t, h, I1)
		sb := h.Final.Shards["sB"]
		sb.Committed, sb.Aborted = []string{"tx4"}, []string{"tx1", "tx3"}
		h.Final.Shards["sB"] = sb
		expect(t, h, I1)
	})
	t.Run("in doubt after settle", func(t *testing.T) {
		h := fixture()
		sa := h.Final.Shards["sA"]
		sa.Prepared = []string{"tx5"}
		h.Final.Shards["sA"] = sa
		expect(t, h, I1)
		h.Settled = false
		expectClean(t, h, I1)
	})
	t.Run("committed decision never applied at a shard", func(t *testing.T) {
		h := fixture()
		h.ShardEvents = slices.DeleteFunc(h.ShardEvents, func(ev ShardEvent) bool {
			return ev.Shard == "sB" && ev.TxID == "tx4" && ev.Kind == ShardCommitted
		})
		sb := h.Final.Shards["sB"]
		sb.Committed, sb.Prepared = []string{"tx1"}, []string{"tx4"}
		h.Final.Shards["sB"] = sb
		expect(t, h, I1)
	})
	t.Run("aborted decision but committed at a shard", func(t *testing.T) {
		h := fixture()
		for _, n := range fxNodes {
			nodeTxnOf(t, h, n, "tx4").Outcome = OutcomeAborted
		}
		expect(t, h, I1)
	})
	t.Run("commit without prepare", func(t *testing.T) {
		h := fixture()
		h.ShardEvents = slices.DeleteFunc(h.ShardEvents, func(ev ShardEvent) bool {
			return ev.Shard == "sA" && ev.TxID == "tx1" && ev.Kind == ShardPrepared
		})
		expect(t, h, I1)
	})
	t.Run("commit although a shard voted NO", func(t *testing.T) {
		h := fixture()
		e := shardEvent(t, h, "sB", ShardPrepared, "tx4")
		e.Kind, e.Players = ShardVotedNo, nil
		vs := expect(t, h, I1)
		if vs[0].Shard != "sB" || vs[0].TxID != "tx4" {
			t.Errorf("violation should name tx4 at sB: %v", vs[0])
		}
	})
}

func TestI6(t *testing.T) {
	dup := func(kind ShardEventKind, shard, tx string) func(*testing.T) {
		return func(t *testing.T) {
			h := fixture()
			e := *shardEvent(t, h, shard, kind, tx)
			addShard(h, shard, 900, e.Kind, e.TxID, e.Players...)
			expect(t, h, I6)
		}
	}
	t.Run("duplicate commit", dup(ShardCommitted, "sA", "tx1"))
	t.Run("duplicate prepare", dup(ShardPrepared, "sB", "tx4"))
	t.Run("duplicate abort", dup(ShardAborted, "sA", "tx3"))
	t.Run("commit and abort at one shard", func(t *testing.T) {
		h := fixture()
		addShard(h, "sA", 900, ShardAborted, "tx4")
		expect(t, h, I6)
	})
	t.Run("vote changed", func(t *testing.T) {
		h := fixture()
		addShard(h, "sA", 153, ShardVotedNo, "tx3")
		expect(t, h, I6)
	})
	t.Run("prepared after abort tombstone", func(t *testing.T) {
		h := fixture()
		addShard(h, "sA", 800, ShardAborted, "tx9")
		addShard(h, "sA", 801, ShardPrepared, "tx9", pt("a2", 110))
		expect(t, h, I6)
	})
	t.Run("abort before prepare, then NO, is fine", func(t *testing.T) {
		h := fixture()
		addShard(h, "sA", 800, ShardAborted, "tx9")
		addShard(h, "sA", 801, ShardVotedNo, "tx9")
		expectClean(t, h, I6)
	})
	t.Run("final journal in two states", func(t *testing.T) {
		h := fixture()
		sa := h.Final.Shards["sA"]
		sa.Aborted = append(sa.Aborted, "tx1")
		h.Final.Shards["sA"] = sa
		expect(t, h, I6)
	})
}

func TestI6AllowsNoThenYes(t *testing.T) {
	// A NO vote is not journaled; after a restart the shard may prepare a redelivered
	// Prepare. Harmless: the coordinator counts one vote per shard.
	h := fixture()
	for i := range h.ShardEvents {
		h.ShardEvents[i].Seq *= 10
	}
	yes := shardEvent(t, h, "sB", ShardPrepared, "tx4")
	h.ShardEvents = append(h.ShardEvents, ShardEvent{Shard: "sB", Seq: yes.Seq - 5, At: yes.At - ms(1), Kind: ShardVotedNo, TxID: "tx4"})
	expectClean(t, h, I6)
	expectClean(t, h, I1)
	if r := Check(h); !r.OK() {
		t.Fatal(r)
	}
}
