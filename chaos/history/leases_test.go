package history

import (
	"slices"
	"testing"
)

// dropLease removes node's copy of the lease event at idx.
func dropLease(h *History, node string, idx uint64) {
	h.LeaseEvents = slices.DeleteFunc(h.LeaseEvents, func(ev LeaseEvent) bool { return ev.Node == node && ev.Index == idx })
}

// insertLease puts ev (with its Node set) right after node's last event below ev.Index.
func insertLease(h *History, ev LeaseEvent) {
	pos := len(h.LeaseEvents)
	for i, e := range h.LeaseEvents {
		if e.Node == ev.Node && e.Index > ev.Index {
			pos = i
			break
		}
	}
	h.LeaseEvents = slices.Insert(h.LeaseEvents, pos, ev)
}

func TestLOG(t *testing.T) {
	t.Run("divergent entry", func(t *testing.T) {
		h := fixture()
		for i, ev := range h.LeaseEvents {
			if ev.Node == "n2" && ev.Index == 50 {
				h.LeaseEvents[i].TxID = "txX"
			}
		}
		vs := expect(t, h, LOG)
		if vs[0].Node != "n2" {
			t.Errorf("violation should name n2: %v", vs[0])
		}
	})
	t.Run("divergent token", func(t *testing.T) {
		h := fixture()
		for i, ev := range h.LeaseEvents {
			if ev.Node == "n3" && ev.Index == 80 {
				h.LeaseEvents[i].Players = []PlayerToken{pt("a1", 80), pt("b1", 81)}
			}
		}
		expect(t, h, LOG)
	})
	t.Run("skipped entry", func(t *testing.T) {
		h := fixture()
		dropLease(h, "n2", 40)
		expect(t, h, LOG)
	})
	t.Run("skip covered by a snapshot restore", func(t *testing.T) {
		h := fixture()
		dropLease(h, "n2", 40)
		dropLease(h, "n2", 50)
		insertLease(h, LeaseEvent{Node: "n2", Index: 55, At: ms(160), Kind: LeaseRestored})
		expectClean(t, h, LOG)
		expectClean(t, h, I2)
	})
	t.Run("restart replays identically", func(t *testing.T) {
		h := fixture()
		byIdx := make(map[uint64]LeaseEvent)
		var rest []LeaseEvent
		for _, ev := range h.LeaseEvents {
			if ev.Node == "n1" {
				byIdx[ev.Index] = ev
			} else {
				rest = append(rest, ev)
			}
		}
		// n1 restarts after applying 60, restores its snapshot at 45, replays 50 and 60.
		for _, idx := range []uint64{10, 20, 40, 50, 60, 45, 50, 60, 70, 80, 90, 100} {
			if idx == 45 {
				rest = append(rest, LeaseEvent{Node: "n1", Index: 45, At: ms(200), Kind: LeaseRestored})
				continue
			}
			rest = append(rest, byIdx[idx])
		}
		h.LeaseEvents = rest
		expectClean(t, h, LOG)
		expectClean(t, h, I2)

		// The same replay without the restore marker is out of order.
		h.LeaseEvents = slices.DeleteFunc(h.LeaseEvents, func(ev LeaseEvent) bool { return ev.Kind == LeaseRestored })
		expect(t, h, LOG)
	})
	t.Run("kill tears the last recorded entry", func(t *testing.T) {
		// Every node applied two events at index 60 and 50; n1 was killed while it
		// recorded index 60's (one of two written), restarted from its snapshot at 45
		// and replayed 50 and 60 whole.
		build := func(tear uint64, first func([]LeaseEvent) []LeaseEvent, marker bool) *History {
			h := fixture()
			var out []LeaseEvent
			var n1 []LeaseEvent
			for _, ev := range h.LeaseEvents {
				evs := []LeaseEvent{ev}
				if ev.Index == 50 || ev.Index == 60 {
					twin := ev
					twin.Kind, twin.TTL, twin.RenewSeq = LeaseRenewed, 0, 7
					evs = append(evs, twin)
				}
				if ev.Node == "n1" {
					n1 = append(n1, evs...)
				} else {
					out = append(out, evs...)
				}
			}
			var rec []LeaseEvent
			for _, ev := range n1 {
				if ev.Index > 60 {
					break
				}
				rec = append(rec, ev)
			}
			// n1's application of index tear as it was recorded before the kill.
			var cut []LeaseEvent
			for i := 0; i < len(rec); {
				j := i
				for j < len(rec) && rec[j].Index == rec[i].Index {
					j++
				}
				app := rec[i:j]
				if rec[i].Index == tear {
					app = first(slices.Clone(app))
				}
				cut = append(cut, app...)
				i = j
			}
			out = append(out, cut...)
			if marker {
				out = append(out, LeaseEvent{Node: "n1", Index: 45, At: ms(200), Kind: LeaseRestored})
			}
			for _, ev := range n1 {
				if ev.Index >= 50 {
					out = append(out, ev)
				}
			}
			h.LeaseEvents = out
			return h
		}
		prefix := func(app []LeaseEvent) []LeaseEvent { return app[:1] }
		expectClean(t, build(60, prefix, true), LOG)
		// Not the last entry before the restart: a short application there is a real
		// divergence, not a torn recording.
		expect(t, build(50, prefix, true), LOG)
		// The last entry, but what was recorded differs instead of stopping short.
		expect(t, build(60, func(app []LeaseEvent) []LeaseEvent { app[0].TxID = "txX"; return app[:1] }, true), LOG)
		// The last entry, but the first application is longer than the replay.
		expect(t, build(60, func(app []LeaseEvent) []LeaseEvent { return append(app, app[0]) }, true), LOG)
	})
	t.Run("lagging node is a prefix", func(t *testing.T) {
		h := fixture()
		dropLease(h, "n3", 80)
		dropLease(h, "n3", 90)
		expectClean(t, h, LOG)
	})
}

func TestI2(t *testing.T) {
	t.Run("grant to a leased player", func(t *testing.T) {
		h := fixture()
		// tx3's Begin at index 50 also takes a1, which tx1 holds until index 70.
		onNodes(h, 50, LeaseGranted, "tx3", func(ev *LeaseEvent) { ev.Players = append(ev.Players, pt("a1", 50)) })
		vs := expect(t, h, I2)
		if vs[0].Player != "a1" {
			t.Errorf("violation should name a1: %v", vs[0])
		}
	})
	t.Run("commit at a shard without a grant", func(t *testing.T) {
		h := fixture()
		addShard(h, "sB", 30, ShardPrepared, "tx2", pt("b2", 30))
		addShard(h, "sB", 31, ShardCommitted, "tx2", pt("b2", 30))
		expect(t, h, I2)
	})
	t.Run("two committed matches with overlapping leases", func(t *testing.T) {
		h := fixture()
		// tx4 is granted a1 at index 60, before tx1's lease ends at 70.
		for _, ev := range slices.Clone(h.LeaseEvents) {
			if ev.TxID == "tx4" && ev.Kind == LeaseGranted {
				dropLease(h, ev.Node, 80)
				ev.Index = 65
				insertLease(h, ev)
			}
		}
		expectClean(t, h, LOG)
		vs := expect(t, h, I2)
		found := false
		for _, v := range vs {
			found = found || v.Shard != "" && v.Player == "a1"
		}
		if !found {
			t.Errorf("expected a shard-level overlap on a1: %v", vs)
		}
	})
	t.Run("release of a lease another txn holds", func(t *testing.T) {
		h := fixture()
		onNodes(h, 60, LeaseFreed, "tx3", func(ev *LeaseEvent) { ev.Players = append(ev.Players, pt("a1", 10)) })
		expect(t, h, I2)
	})
	t.Run("final lease table disagrees with the log", func(t *testing.T) {
		h := fixture()
		n3 := h.Final.Nodes["n3"]
		n3.Leases = n3.Leases[:1]
		h.Final.Nodes["n3"] = n3
		expect(t, h, I2)
	})
	t.Run("final lease table holds a player twice", func(t *testing.T) {
		h := fixture()
		n1 := h.Final.Nodes["n1"]
		n1.Leases = []LeaseFinal{{Player: "a2", TxID: "tx8", State: StateActive}, {Player: "a2", TxID: "tx9", State: StateActive}}
		h.Final.Nodes["n1"] = n1
		expect(t, h, I2)
	})
}

func TestI4(t *testing.T) {
	t.Run("grant token goes down", func(t *testing.T) {
		h := fixture()
		onNodes(h, 80, LeaseGranted, "tx4", func(ev *LeaseEvent) { ev.Players = []PlayerToken{pt("a1", 10), pt("b1", 80)} })
		vs := expect(t, h, I4)
		if vs[0].Player != "a1" {
			t.Errorf("violation should name a1: %v", vs[0])
		}
	})
	t.Run("shard applies a lower token after a higher one", func(t *testing.T) {
		h := fixture()
		c1 := shardEvent(t, h, "sA", ShardCommitted, "tx1")
		c4 := shardEvent(t, h, "sA", ShardCommitted, "tx4")
		c1.Seq, c4.Seq = c4.Seq, c1.Seq
		expect(t, h, I4)
	})
	t.Run("shard commits with a token the log never granted", func(t *testing.T) {
		h := fixture()
		shardEvent(t, h, "sB", ShardCommitted, "tx4").Players = []PlayerToken{pt("b1", 79)}
		expect(t, h, I4)
	})
	t.Run("proposer told a wrong token", func(t *testing.T) {
		h := fixture()
		h.Ops[0].Tokens["a1"] = 11
		expect(t, h, I4)
	})
	t.Run("one token for two txns at a shard", func(t *testing.T) {
		h := fixture()
		addShard(h, "sA", 900, ShardPrepared, "tx7", pt("a1", 80))
		addShard(h, "sA", 901, ShardCommitted, "tx7", pt("a1", 80))
		vs := expect(t, h, I4)
		if vs[0].TxID != "tx7" {
			t.Errorf("violation should name tx7: %v", vs[0])
		}
	})
}

func TestI7(t *testing.T) {
	// tx1's last renew was invoked at 100ms; ttl 300ms, ρ 1%: earliest expiry 397ms.
	setExpiry := func(h *History, atMs float64) {
		for i := range h.LeaseEvents {
			if h.LeaseEvents[i].Kind == LeaseExpired {
				h.LeaseEvents[i].At = ms(atMs) + ms(float64(slices.Index(fxNodes, h.LeaseEvents[i].Node)))
			}
		}
	}
	t.Run("expiry 10ms before ttl(1-rho)", func(t *testing.T) {
		h := fixture()
		setExpiry(h, 387)
		vs := expect(t, h, I7)
		if vs[0].TxID != "tx1" {
			t.Errorf("violation should name tx1: %v", vs[0])
		}
	})
	t.Run("expiry exactly at ttl(1-rho)", func(t *testing.T) {
		h := fixture()
		setExpiry(h, 397)
		expectClean(t, h, I7)
	})
	t.Run("earliest node counts", func(t *testing.T) {
		h := fixture()
		setExpiry(h, 397)
		onNodes(h, 70, LeaseExpired, "tx1", func(ev *LeaseEvent) {
			if ev.Node == "n3" {
				ev.At = ms(396)
			}
		})
		expect(t, h, I7)
	})
	t.Run("lost unknown renew extends nothing", func(t *testing.T) {
		h := fixture()
		h.Ops = append(h.Ops, Op{Process: "host1", Kind: OpRenew, TxID: "tx1", Invoke: ms(200), Return: ms(230), Returned: true, Result: ResultUnknown})
		expectClean(t, h, I7)
	})
	t.Run("applied unknown renew counts", func(t *testing.T) {
		h := fixture()
		h.Ops = append(h.Ops, Op{Process: "host1", Kind: OpRenew, TxID: "tx1", Invoke: ms(200), Return: ms(230), Returned: true, Result: ResultUnknown})
		ren := le(45, 201, LeaseRenewed, "tx1", pt("a1", 10), pt("b1", 10))
		ren.TTL, ren.RenewSeq = fxTTL, 2
		for _, n := range fxNodes {
			ev := ren
			ev.Node = n
			insertLease(h, ev)
		}
		onNodes(h, 70, LeaseExpired, "tx1", func(ev *LeaseEvent) { ev.RenewSeq = 2 })
		expect(t, h, I7) // 410ms < 200ms + 297ms
	})
	t.Run("renew after expiry", func(t *testing.T) {
		h := fixture()
		ren := le(75, 415, LeaseRenewed, "tx1", pt("a1", 10))
		ren.RenewSeq = 2
		for _, n := range fxNodes {
			ev := ren
			ev.Node = n
			insertLease(h, ev)
		}
		expect(t, h, I7)
	})
}
