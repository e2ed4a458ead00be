package shardsvc

import (
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// The audit is shown to count what it must: a clean picture counts nothing, and each
// broken picture below makes exactly its counter non-zero.

func entry(txid string, st twophase.JournalState, players ...string) twophase.JournalEntry {
	e := twophase.JournalEntry{TxID: txid, State: st}
	for _, p := range players {
		e.Players = append(e.Players, &smv1.ShardPlayer{PlayerId: p})
	}
	return e
}

func txn(txid string, out smv1.Outcome, state smv1.TxnState, players map[string]string) *smv1.TxnRecord {
	t := &smv1.TxnRecord{Txid: txid, State: state, Decision: &smv1.Decision{Txid: txid, Outcome: out}}
	team := &smv1.Team{}
	seen := map[string]bool{}
	for _, p := range sortedKeys(players) {
		team.Players = append(team.Players, &smv1.Player{PlayerId: p, ShardId: players[p]})
		if !seen[players[p]] {
			seen[players[p]] = true
			t.Shards = append(t.Shards, players[p])
		}
	}
	t.Proposal = &smv1.Proposal{ProposalId: "p-" + txid, Teams: []*smv1.Team{team}}
	return t
}

const (
	committed = smv1.Outcome_OUTCOME_COMMITTED
	aborted   = smv1.Outcome_OUTCOME_ABORTED
	done      = smv1.TxnState_TXN_STATE_DONE
)

// cleanPicture: tx-1 committed and being played by a@s1 and b@s2 (leases held); tx-2
// aborted after s1 voted NO and s2 voted YES; tx-3 a finished match.
func cleanPicture() AuditInput {
	state := &smv1.FSMState{
		Txns: []*smv1.TxnRecord{
			txn("tx-1", committed, done, map[string]string{"a": "s1", "b": "s2"}),
			txn("tx-2", aborted, done, map[string]string{"c": "s1", "d": "s2"}),
			txn("tx-3", committed, done, map[string]string{"c": "s1", "e": "s2"}),
		},
		Leases: []*smv1.LeaseRecord{
			{PlayerId: "a", Txid: "tx-1", State: smv1.LeaseState_LEASE_STATE_ACTIVE},
			{PlayerId: "b", Txid: "tx-1", State: smv1.LeaseState_LEASE_STATE_ACTIVE},
		},
	}
	state.Txns[2].LeaseEnd = "released"
	return AuditInput{
		Shards: []ShardView{
			{ID: "s1", Journal: []twophase.JournalEntry{entry("tx-1", twophase.JournalCommitted, "a"),
				entry("tx-2", twophase.JournalVotedNo, "c"), entry("tx-3", twophase.JournalCommitted, "c")},
				World: &WorldSnapshot{Players: []PlayerSnapshot{
					{ID: "a", State: StateInMatch, TxID: "tx-1", Matches: []string{"tx-1"}}, {ID: "c", State: StateIdle}}}},
			{ID: "s2", Journal: []twophase.JournalEntry{entry("tx-1", twophase.JournalCommitted, "b"),
				entry("tx-2", twophase.JournalAborted, "d"), entry("tx-3", twophase.JournalCommitted, "e")},
				World: &WorldSnapshot{Players: []PlayerSnapshot{
					{ID: "b", State: StateInMatch, TxID: "tx-1", Matches: []string{"tx-1"}}, {ID: "d", State: StateIdle}}}},
		},
		Nodes: []NodeView{{ID: "c1", State: state}, {ID: "c2", State: state}},
	}
}

func TestAuditCleanPicture(t *testing.T) {
	r := Audit(cleanPicture())
	if !r.Clean() || len(r.Problems) != 0 {
		t.Fatalf("clean picture: %+v", r)
	}
	if r.Shards != 2 || r.Nodes != 2 || r.Txns != 3 {
		t.Errorf("audited %d shards, %d nodes, %d txns", r.Shards, r.Nodes, r.Txns)
	}
}

func TestAuditCatchesBrokenPictures(t *testing.T) {
	type counts struct{ atomicity, double, doubt int }
	for _, tc := range []struct {
		name string
		brk  func(in *AuditInput)
		want counts
	}{
		{"committed at one shard, aborted at another", func(in *AuditInput) {
			in.Shards[1].Journal[0].State = twophase.JournalAborted // tx-1 at s2
		}, counts{atomicity: 1}},
		{"shard committed what the coordinator aborted", func(in *AuditInput) {
			in.Shards[1].Journal[1].State = twophase.JournalCommitted // tx-2 at s2
		}, counts{atomicity: 1}},
		{"shard voted NO on what the coordinator committed", func(in *AuditInput) {
			in.Shards[0].Journal[2].State = twophase.JournalVotedNo // tx-3 at s1
		}, counts{atomicity: 1}},
		{"committed txn missing at a shard", func(in *AuditInput) {
			in.Shards[1].Journal = in.Shards[1].Journal[:2] // s2 forgot tx-3
		}, counts{atomicity: 1}},
		{"shard committed before any decision", func(in *AuditInput) {
			st := in.Nodes[0].State
			st.Txns = append(st.Txns, txn("tx-4", smv1.Outcome_OUTCOME_UNSPECIFIED, smv1.TxnState_TXN_STATE_PREPARING, map[string]string{"f": "s1"}))
			in.Shards[0].Journal = append(in.Shards[0].Journal, entry("tx-4", twophase.JournalCommitted, "f"))
		}, counts{atomicity: 1}},
		{"coordinator nodes disagree", func(in *AuditInput) {
			other := cleanPicture().Nodes[0].State
			other.Txns[1].Decision.Outcome = committed // tx-2
			in.Nodes[1].State = other
		}, counts{atomicity: 1}},
		{"player in two matches at a shard", func(in *AuditInput) {
			in.Shards[0].World.Players[0].Matches = []string{"tx-1", "tx-9"}
		}, counts{double: 1}},
		{"player plays a match their lease gives to another", func(in *AuditInput) {
			in.Shards[1].World.Players[1] = PlayerSnapshot{ID: "d", State: StateInMatch, TxID: "tx-2", Matches: []string{"tx-2"}}
			st := cleanPicture().Nodes[0].State
			st.Leases = append(st.Leases, &smv1.LeaseRecord{PlayerId: "d", Txid: "tx-7", State: smv1.LeaseState_LEASE_STATE_ACTIVE})
			in.Nodes = []NodeView{{ID: "c1", State: st}}
		}, counts{double: 1}},
		{"coordinator has a player in two live matches", func(in *AuditInput) {
			st := cleanPicture().Nodes[0].State
			st.Txns[2].LeaseEnd = "" // tx-3 (player c) live again, and c joins tx-1
			st.Txns[0].Proposal.Teams[0].Players = append(st.Txns[0].Proposal.Teams[0].Players, &smv1.Player{PlayerId: "c", ShardId: "s1"})
			in.Nodes = []NodeView{{ID: "c1", State: st}}
		}, counts{double: 1}},
		{"shard in doubt", func(in *AuditInput) {
			in.Shards[0].Journal = append(in.Shards[0].Journal, entry("tx-5", twophase.JournalPrepared, "g"))
		}, counts{doubt: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cleanPicture()
			tc.brk(&in)
			r := Audit(in)
			got := counts{r.AtomicityViolations, r.DoubleBooked, r.InDoubt}
			if got != tc.want {
				t.Fatalf("counts %+v, want %+v; problems %q", got, tc.want, r.Problems)
			}
			if r.Clean() || len(r.Problems) == 0 {
				t.Fatalf("a broken picture passed: %+v", r)
			}
		})
	}
}

func TestAuditProblemsAreBounded(t *testing.T) {
	in := cleanPicture()
	for i := 0; i < 3*MaxAuditProblems; i++ {
		in.Shards[0].Journal = append(in.Shards[0].Journal, entry("tx-p"+string(rune('a'+i%26))+string(rune('a'+i/26)), twophase.JournalPrepared))
	}
	r := Audit(in)
	if r.InDoubt != 3*MaxAuditProblems || len(r.Problems) != MaxAuditProblems {
		t.Fatalf("in doubt %d, %d problems", r.InDoubt, len(r.Problems))
	}
}
