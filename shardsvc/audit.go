package shardsvc

import (
	"fmt"
	"sort"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// ShardView is what one shard holds at the end of a run.
type ShardView struct {
	ID string
	// Journal is the shard participant's journal (Journal.List). The audit assumes it
	// was not compacted during the run.
	Journal []twophase.JournalEntry
	// World is the shard's player state, nil if the shard has none to show.
	World *WorldSnapshot
}

// NodeView is what one coordinator node holds.
type NodeView struct {
	ID    string
	State *smv1.FSMState
}

// AuditInput is everything the audit compares. Take it after the run settled: no
// proposal in flight, every decision delivered.
type AuditInput struct {
	Shards []ShardView
	Nodes  []NodeView
}

// AuditReport counts what the audit found. A clean run has every violation count at
// zero.
type AuditReport struct {
	// Shards, Nodes and Txns say how much was audited (Txns: distinct txids seen).
	Shards int `json:"audited_shards"`
	Nodes  int `json:"audited_nodes"`
	Txns   int `json:"audited_txns"`
	// AtomicityViolations counts txids committed at one shard and aborted at another,
	// held COMMITTED by a shard when the coordinator decided ABORTED (or nothing yet),
	// not held COMMITTED by a shard of a txn the coordinator committed, or decided
	// differently by two coordinator nodes.
	AtomicityViolations int `json:"atomicity_violations"`
	// DoubleBooked counts players in two live matches at once: at a shard, at a
	// coordinator node, or in a match at their shard while a coordinator's lease on
	// them is held by another txn.
	DoubleBooked int `json:"double_booked"`
	// InDoubt counts journal entries still PREPARED: shards that voted YES and never
	// learned the outcome.
	InDoubt int `json:"in_doubt"`
	// Problems describes the first MaxAuditProblems findings, one line each.
	Problems []string `json:"problems,omitempty"`
}

// MaxAuditProblems bounds AuditReport.Problems.
const MaxAuditProblems = 20

// Clean reports whether the audit found nothing wrong.
func (r AuditReport) Clean() bool {
	return r.AtomicityViolations == 0 && r.DoubleBooked == 0 && r.InDoubt == 0
}

type auditor struct {
	rep    AuditReport
	atomic map[string]bool // txids found broken
	booked map[string]bool // "shard/player" or "node/player" found double booked
}

func (a *auditor) problem(format string, args ...any) {
	if len(a.rep.Problems) < MaxAuditProblems {
		a.rep.Problems = append(a.rep.Problems, fmt.Sprintf(format, args...))
	}
}

func (a *auditor) breakAtomicity(txid, format string, args ...any) {
	if !a.atomic[txid] {
		a.atomic[txid] = true
		a.rep.AtomicityViolations++
	}
	a.problem("atomicity: "+txid+": "+format, args...)
}

func (a *auditor) doubleBook(key, format string, args ...any) {
	if !a.booked[key] {
		a.booked[key] = true
		a.rep.DoubleBooked++
	}
	a.problem("double booked: "+format, args...)
}

// Audit compares what the shards and the coordinator nodes hold and counts the
// violations of atomicity (I1, I3), of no double booking (I2) and of termination (I5).
func Audit(in AuditInput) AuditReport {
	a := &auditor{atomic: map[string]bool{}, booked: map[string]bool{}}
	a.rep.Shards, a.rep.Nodes = len(in.Shards), len(in.Nodes)
	txids := map[string]bool{}

	// What each shard recorded, by txid.
	held := map[string]map[string]twophase.JournalState{} // txid → shard → state
	for _, s := range in.Shards {
		for _, e := range s.Journal {
			txids[e.TxID] = true
			if held[e.TxID] == nil {
				held[e.TxID] = map[string]twophase.JournalState{}
			}
			held[e.TxID][s.ID] = e.State
			if e.State == twophase.JournalPrepared {
				a.rep.InDoubt++
				a.problem("in doubt: %s: shard %s voted YES and never learned the outcome", e.TxID, s.ID)
			}
		}
	}
	for _, txid := range sortedKeys(held) {
		var committed, aborted []string
		for _, sh := range sortedKeys(held[txid]) {
			switch held[txid][sh] {
			case twophase.JournalCommitted:
				committed = append(committed, sh)
			case twophase.JournalAborted:
				aborted = append(aborted, sh)
			}
		}
		if len(committed) > 0 && len(aborted) > 0 {
			a.breakAtomicity(txid, "committed at %v but aborted at %v", committed, aborted)
		}
	}

	// Each node's decisions against the shards and against the other nodes.
	shardIDs := map[string]bool{}
	for _, s := range in.Shards {
		shardIDs[s.ID] = true
	}
	decided := map[string]smv1.Outcome{} // txid → first node's outcome
	for _, n := range in.Nodes {
		for _, t := range n.State.GetTxns() {
			txids[t.GetTxid()] = true
			a.auditTxn(n.ID, t, held[t.GetTxid()], shardIDs)
			out := t.GetDecision().GetOutcome()
			if !twophase.Decided(t.GetState()) {
				continue
			}
			if prev, ok := decided[t.GetTxid()]; ok && prev != out {
				a.breakAtomicity(t.GetTxid(), "coordinator nodes disagree: %s on one, %s on %s", prev, out, n.ID)
			} else if !ok {
				decided[t.GetTxid()] = out
			}
		}
		a.auditNodeMatches(n)
	}

	// Players: in two matches at a shard, or in a match their lease gives to another.
	leases := make([]map[string]string, len(in.Nodes)) // node → player → leasing txid
	for i, n := range in.Nodes {
		leases[i] = make(map[string]string, len(n.State.GetLeases()))
		for _, l := range n.State.GetLeases() {
			leases[i][l.GetPlayerId()] = l.GetTxid()
		}
	}
	for _, s := range in.Shards {
		if s.World == nil {
			continue
		}
		for _, p := range s.World.Players {
			if len(p.Matches) > 1 {
				a.doubleBook(s.ID+"/"+p.ID, "player %s is in %d matches at shard %s: %v", p.ID, len(p.Matches), s.ID, p.Matches)
			}
			if p.State != StateInMatch {
				continue
			}
			for i, n := range in.Nodes {
				if holder, ok := leases[i][p.ID]; ok && holder != p.TxID {
					a.doubleBook(s.ID+"/"+p.ID, "player %s plays match %s at shard %s, but node %s leases them to %s",
						p.ID, p.TxID, s.ID, n.ID, holder)
				}
			}
		}
	}
	a.rep.Txns = len(txids)
	return a.rep
}

// auditTxn checks one node's record of a txn against the shards' journals.
func (a *auditor) auditTxn(node string, t *smv1.TxnRecord, held map[string]twophase.JournalState, shards map[string]bool) {
	txid, out := t.GetTxid(), t.GetDecision().GetOutcome()
	for _, sh := range t.GetShards() {
		st, ok := held[sh]
		switch {
		case !shards[sh]:
			// not audited
		case out == smv1.Outcome_OUTCOME_COMMITTED && !ok:
			a.breakAtomicity(txid, "node %s decided COMMITTED, shard %s has no record of it", node, sh)
		case out == smv1.Outcome_OUTCOME_COMMITTED && (st == twophase.JournalAborted || st == twophase.JournalVotedNo):
			a.breakAtomicity(txid, "node %s decided COMMITTED, shard %s holds %s", node, sh, st)
		case out != smv1.Outcome_OUTCOME_COMMITTED && ok && st == twophase.JournalCommitted:
			what := "ABORTED"
			if !twophase.Decided(t.GetState()) {
				what = "nothing yet"
			}
			a.breakAtomicity(txid, "shard %s holds COMMITTED, node %s decided %s", sh, node, what)
		}
	}
}

// auditNodeMatches checks that no player is in two of a node's live matches.
func (a *auditor) auditNodeMatches(n NodeView) {
	in := map[string]string{} // player → live match
	for _, t := range n.State.GetTxns() {
		if t.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED || t.GetLeaseEnd() != "" {
			continue
		}
		for _, team := range t.GetProposal().GetTeams() {
			for _, pl := range team.GetPlayers() {
				if other, ok := in[pl.GetPlayerId()]; ok {
					a.doubleBook("coordinator/"+pl.GetPlayerId(), "node %s has player %s in live matches %s and %s",
						n.ID, pl.GetPlayerId(), other, t.GetTxid())
					continue
				}
				in[pl.GetPlayerId()] = t.GetTxid()
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
