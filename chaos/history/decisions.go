package history

import (
	"slices"
	"time"
)

// i3 checks durable decisions (I3): one txid per proposal id, one definite answer per
// proposal, nodes agree on every decision, and every decision given to a proposer is
// the one the nodes, the lease log and the shards hold.
func (a *analysis) i3() []Violation {
	g := newViolator(I3)
	pids := make(map[string]struct{})
	for pid := range a.proposes {
		pids[pid] = struct{}{}
	}
	for pid := range a.pidTxs {
		pids[pid] = struct{}{}
	}
	for _, pid := range sortedKeys(pids) {
		if txs := sortedKeys(a.pidTxs[pid]); len(txs) > 1 {
			g.addf(txs[1], "", "", "", "proposal %s maps to several txids: %s", pid, list(txs))
		}
		var answers []OpResult
		for _, op := range a.proposes[pid] {
			if (op.Result == ResultCommitted || op.Result == ResultAborted) && !slices.Contains(answers, op.Result) {
				answers = append(answers, op.Result)
			}
		}
		if len(answers) > 1 {
			g.addf(a.firstTx(pid), "", "", "", "proposal %s was answered both committed and aborted", pid)
		}
	}
	for _, tx := range sortedKeys(a.finals) {
		if dec := a.nodeDecisions(tx); len(dec) > 1 {
			g.addf(tx, "", "", "", "nodes disagree: COMMITTED on %s, ABORTED on %s", list(dec[OutcomeCommitted]), list(dec[OutcomeAborted]))
		}
	}
	type told struct{ tx, outcome string }
	seen := make(map[told]bool)
	for _, op := range a.h.Ops {
		if op.Kind != OpPropose || op.TxID == "" {
			continue
		}
		want := map[OpResult]string{ResultCommitted: OutcomeCommitted, ResultAborted: OutcomeAborted}[op.Result]
		if want == "" || seen[told{op.TxID, want}] {
			continue
		}
		seen[told{op.TxID, want}] = true
		a.toldDecision(g, op, want)
	}
	return g.violations()
}

// toldDecision checks that the outcome a proposer was told for op.TxID holds everywhere.
func (a *analysis) toldDecision(g *violator, op Op, want string) {
	tx := op.TxID
	for _, nt := range a.finals[tx] {
		switch d := nt.t.Decision(); {
		case d != "" && d != want:
			g.addf(tx, "", "", nt.node, "proposer %s was told %s, but node %s holds %s", op.Process, want, nt.node, d)
		case d == "" && a.h.Settled:
			g.addf(tx, "", "", nt.node, "proposer %s was told %s, but node %s still holds it undecided (%s) after settle", op.Process, want, nt.node, nt.t.State)
		}
	}
	if len(a.h.LeaseEvents) > 0 {
		if want == OutcomeCommitted && a.hasLeaseKind(tx, LeaseFreed) {
			g.addf(tx, "", "", "", "proposer %s was told COMMITTED, but the lease log freed its leases (abort applied)", op.Process)
		}
		if want == OutcomeAborted && a.hasLeaseKind(tx, LeaseActivated) {
			g.addf(tx, "", "", "", "proposer %s was told ABORTED, but the lease log activated its leases (commit applied)", op.Process)
		}
	}
	if want == OutcomeAborted {
		for _, s := range a.shards {
			if a.committedAt(s, tx) {
				g.addf(tx, "", s, "", "proposer %s was told ABORTED, but shard %s committed it", op.Process, s)
			}
		}
		return
	}
	if !a.h.Settled {
		return
	}
	for _, s := range union(a.txShards(tx), shardsOf(op.Players)) {
		if !a.committedAt(s, tx) {
			g.addf(tx, "", s, "", "proposer %s was told COMMITTED, but shard %s never applied the commit", op.Process, s)
		}
	}
}

// firstTx is some txid of a proposal, for labelling.
func (a *analysis) firstTx(pid string) string {
	if txs := sortedKeys(a.pidTxs[pid]); len(txs) > 0 {
		return txs[0]
	}
	return ""
}

// i5 checks termination (I5) on a settled history: nothing PREPARING, every decision
// acked by every shard (DONE), every op returned, every unknown proposal decided.
func (a *analysis) i5() []Violation {
	if !a.h.Settled {
		a.note("I5 skipped: history not settled")
		return nil
	}
	g := newViolator(I5)
	for _, tx := range sortedKeys(a.finals) {
		for _, nt := range a.finals[tx] {
			switch nt.t.State {
			case StatePreparing:
				g.add(tx, "", "", nt.node, "still PREPARING after settle")
			case StateCommitted, StateAborted:
				var missing []string
				for _, s := range nt.t.Shards {
					if !slices.Contains(nt.t.Acked, s) {
						missing = append(missing, s)
					}
				}
				g.addf(tx, "", "", nt.node, "decided %s but not DONE after settle (unacked: %s)", nt.t.State, list(missing))
			}
		}
	}
	for _, op := range a.h.Ops {
		if !op.Returned {
			g.addf(op.TxID, "", "", "", "%s by %s (proposal %q) invoked at %v never returned", op.Kind, op.Process, op.ProposalID, op.Invoke.Round(time.Microsecond))
			continue
		}
		if op.Kind == OpPropose && op.Result == ResultUnknown && !a.resolved(op) {
			g.addf(op.TxID, "", "", "", "proposal %q by %s got unknown and never reached a final decision", op.ProposalID, op.Process)
		}
	}
	return g.violations()
}

// resolved reports whether an indeterminate proposal reached a decision: a retry got a
// definite answer, or its txn is decided on a node, in the lease log or at a shard.
func (a *analysis) resolved(op Op) bool {
	if op.ProposalID != "" {
		for _, o := range a.proposes[op.ProposalID] {
			if o.Result == ResultCommitted || o.Result == ResultAborted {
				return true
			}
		}
	}
	var txs []string
	if op.ProposalID != "" {
		txs = sortedKeys(a.pidTxs[op.ProposalID])
	}
	if op.TxID != "" {
		txs = append(txs, op.TxID)
	}
	return slices.ContainsFunc(txs, a.decidedSomewhere)
}

// decidedSomewhere reports evidence that tx was decided.
func (a *analysis) decidedSomewhere(tx string) bool {
	if len(a.nodeDecisions(tx)) > 0 {
		return true
	}
	if len(a.h.LeaseEvents) > 0 && (a.hasLeaseKind(tx, LeaseActivated) || a.hasLeaseKind(tx, LeaseFreed)) {
		return true
	}
	return slices.ContainsFunc(a.shards, func(s string) bool { return a.committedAt(s, tx) || a.abortedAt(s, tx) })
}

func union(xs, ys []string) []string {
	out := slices.Clone(xs)
	for _, y := range ys {
		if !slices.Contains(out, y) {
			out = append(out, y)
		}
	}
	slices.Sort(out)
	return out
}
