package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// i2 checks no double booking (I2): every node's lease events replayed through an
// independent lease model, the nodes' final lease tables, and the shards' commits
// against the lease intervals of the canonical log.
func (a *analysis) i2() []Violation {
	g := newViolator(I2)
	a.finalDuplicates(g)
	if len(a.h.LeaseEvents) == 0 {
		return g.violations()
	}
	l, r := a.leaseLog(), a.replayLog()
	for _, n := range l.nodes {
		m := newLeaseModel()
		var at uint64
		for _, app := range n.apps {
			if app.restore {
				if m = r.snapshots[app.index]; m == nil {
					m = newLeaseModel()
				}
				m, at = m.clone(), app.index
				continue
			}
			if app.index <= at {
				continue // re-applied without a restore marker: a LOG violation, not a booking
			}
			at = app.index
			for _, ev := range app.events {
				m.apply(ev, func(p, msg string) { g.add(ev.TxID, p, "", n.node, msg) })
			}
		}
	}
	if l.complete {
		a.finalLeaseTables(g, r)
	} else {
		a.note("I2 final lease tables and commit-without-grant not checked: every node restored a snapshot, so the lease log may be incomplete")
	}
	a.shardBookings(g, l, r)
	return g.violations()
}

// finalDuplicates flags a node whose final lease table names a player twice.
func (a *analysis) finalDuplicates(g *violator) {
	for _, n := range a.nodes {
		seen := make(map[string]string)
		for _, lf := range a.h.Final.Nodes[n].Leases {
			if tx, ok := seen[lf.Player]; ok {
				g.addf(lf.TxID, lf.Player, "", n, "final lease table holds %s for both %s and %s", lf.Player, tx, lf.TxID)
			}
			seen[lf.Player] = lf.TxID
		}
	}
}

// finalLeaseTables compares each node's final lease table with the canonical log
// replayed up to the node's applied index.
func (a *analysis) finalLeaseTables(g *violator, r *replay) {
	for _, n := range a.nodes {
		nf := a.h.Final.Nodes[n]
		want := r.snapshots[nf.AppliedIndex]
		if nf.AppliedIndex == 0 || want == nil {
			continue
		}
		got := make(map[string]LeaseFinal)
		for _, lf := range nf.Leases {
			got[lf.Player] = lf
		}
		for _, p := range sortedKeys(want.holders) {
			h := want.holders[p]
			lf, ok := got[p]
			switch {
			case !ok:
				g.addf(h.tx, p, "", n, "log replayed to index %d has %s held by %s, but the final lease table has no lease on it", nf.AppliedIndex, p, h.tx)
			case lf.TxID != h.tx, lf.Token != 0 && lf.Token != h.token, lf.State != "" && lf.State != h.state:
				g.addf(lf.TxID, p, "", n, "final lease table has %s held by %s (token %d, %s), but the log replayed to index %d gives %s (token %d, %s)",
					p, lf.TxID, lf.Token, lf.State, nf.AppliedIndex, h.tx, h.token, h.state)
			}
		}
		for _, p := range sortedKeys(got) {
			if _, ok := want.holders[p]; !ok {
				g.addf(got[p].TxID, p, "", n, "final lease table has %s held by %s, but the log replayed to index %d has no lease on it", p, got[p].TxID, nf.AppliedIndex)
			}
		}
	}
}

// shardBookings checks every (txid, player) a shard committed: the log must have
// granted it, and no player may be committed for two txns whose leases overlap.
func (a *analysis) shardBookings(g *violator, l *leaseLog, r *replay) {
	where := make(map[txPlayer]string) // first shard that committed it
	byPlayer := make(map[string][]string)
	add := func(tx, p, s string) {
		k := txPlayer{tx, p}
		if _, ok := where[k]; !ok {
			where[k] = s
			byPlayer[p] = append(byPlayer[p], tx)
		}
	}
	for _, s := range a.shards {
		for _, tx := range sortedKeys(a.shardTx[s]) {
			for _, pt := range a.shardTx[s][tx].committedPlayers {
				add(tx, pt.Player, s)
			}
		}
		for _, tx := range sortedKeys(a.journal[s]) {
			if slices.Contains(a.journal[s][tx], "committed") {
				for _, p := range a.txPlayers(tx) {
					if p.Shard == s {
						add(tx, p.Player, s)
					}
				}
			}
		}
	}
	for _, p := range sortedKeys(byPlayer) {
		type lease struct {
			tx string
			iv interval
		}
		var ls []lease
		for _, tx := range byPlayer[p] {
			iv, ok := r.intervals[txPlayer{tx, p}]
			if !ok {
				if l.complete {
					s := where[txPlayer{tx, p}]
					g.addf(tx, p, s, "", "shard %s committed %s for %s, which the lease log never granted", s, p, tx)
				}
				continue
			}
			ls = append(ls, lease{tx, iv})
		}
		slices.SortFunc(ls, func(x, y lease) int { return cmp.Compare(x.iv.start, y.iv.start) })
		if len(ls) == 0 {
			continue
		}
		far := ls[0] // the lease that ends last among those before cur
		for _, cur := range ls[1:] {
			if cur.iv.start < far.iv.end {
				g.addf(cur.tx, p, where[txPlayer{cur.tx, p}], "", "%s committed at shards for %s (lease %s) and %s (lease %s), whose leases overlap",
					p, far.tx, fmtInterval(far.iv), cur.tx, fmtInterval(cur.iv))
			}
			if cur.iv.end > far.iv.end {
				far = cur
			}
		}
	}
}

func fmtInterval(iv interval) string {
	if iv.end == math.MaxUint64 {
		return fmt.Sprintf("[%d, live)", iv.start)
	}
	return fmt.Sprintf("[%d, %d)", iv.start, iv.end)
}
