package history

import (
	"slices"
	"strings"
)

// i1 checks atomicity (I1) from the shards' events and journals and the
// nodes' final decisions.
func (a *analysis) i1() []Violation {
	g := newViolator(I1)
	for _, tx := range a.allTxIDs() {
		var commits, aborts []string
		for _, s := range a.shards {
			if a.committedAt(s, tx) {
				commits = append(commits, s)
			}
			if a.abortedAt(s, tx) {
				aborts = append(aborts, s)
			}
		}
		if len(commits) > 0 {
			for _, s := range aborts {
				others := slices.DeleteFunc(slices.Clone(commits), func(c string) bool { return c == s })
				if len(others) > 0 {
					g.addf(tx, "", s, "", "committed at %s but aborted at %s", list(others), s)
				}
			}
			for _, s := range a.shards {
				st := a.shardTx[s][tx]
				switch {
				case st == nil:
				case st.committed > 0 && st.prepared == 0:
					g.addf(tx, "", s, "", "shard %s applied the commit without having prepared (voted YES)", s)
				case st.votedNo > 0 && st.prepared == 0:
					g.addf(tx, "", s, "", "committed at %s although shard %s voted NO", list(commits), s)
				}
			}
		}
		dec := a.nodeDecisions(tx)
		if ns := dec[OutcomeAborted]; len(ns) > 0 {
			for _, s := range commits {
				g.addf(tx, "", s, "", "ABORTED on nodes %s but committed at shard %s", list(ns), s)
			}
		}
		if ns := dec[OutcomeCommitted]; len(ns) > 0 && a.h.Settled {
			for _, s := range a.txShards(tx) {
				if !a.committedAt(s, tx) {
					g.addf(tx, "", s, "", "COMMITTED on nodes %s but shard %s never applied the commit", list(ns), s)
				}
			}
		}
	}
	if !a.h.Settled {
		a.note("I1 in-doubt and all-shards-applied checks and I3 settle-time checks skipped: history not settled")
		return g.violations()
	}
	for _, s := range a.shards {
		for _, tx := range a.h.Final.Shards[s].Prepared {
			g.addf(tx, "", s, "", "still prepared (in doubt) at shard %s after settle", s)
		}
	}
	return g.violations()
}

// nodeDecisions maps each decided outcome of tx to the nodes holding it.
func (a *analysis) nodeDecisions(tx string) map[string][]string {
	dec := make(map[string][]string)
	for _, nt := range a.finals[tx] {
		if d := nt.t.Decision(); d != "" {
			dec[d] = append(dec[d], nt.node)
		}
	}
	return dec
}

// i6 checks exactly-once effect (I6): each shard applies each effect of a txid at most
// once, never both outcomes, and never changes its vote.
func (a *analysis) i6() []Violation {
	g := newViolator(I6)
	for _, s := range a.shards {
		m := a.shardTx[s]
		for _, tx := range sortedKeys(m) {
			st := m[tx]
			for _, c := range []struct {
				n    int
				what string
			}{{st.prepared, "prepare"}, {st.committed, "commit"}, {st.aborted, "abort"}} {
				if c.n > 1 {
					g.addf(tx, "", s, "", "shard %s applied the %s %d times", s, c.what, c.n)
				}
			}
			if a.committedAt(s, tx) && a.abortedAt(s, tx) {
				g.addf(tx, "", s, "", "shard %s applied both commit and abort", s)
			}
			if st.noAfterYes {
				g.addf(tx, "", s, "", "shard %s voted NO after having prepared (journaled YES)", s)
			}
			if st.preparedAfterAbort {
				g.addf(tx, "", s, "", "shard %s prepared after applying the abort (tombstone ignored)", s)
			}
		}
		j := a.journal[s]
		for _, tx := range sortedKeys(j) {
			if len(j[tx]) > 1 {
				g.addf(tx, "", s, "", "shard %s's final journal holds it as %s", s, strings.Join(j[tx], " and "))
			}
		}
	}
	return g.violations()
}

func list(xs []string) string { return strings.Join(xs, ",") }
