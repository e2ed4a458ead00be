package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The shared policy table, end to end: every case goes through a real cluster whose
// leader evaluates the default bundle before Begin. Allowed cases commit; denied ones
// come back ABORTED / POLICY_DENIED with exactly the table's denial codes, lease
// nobody, and record the bundle revision in the transaction.
func TestClusterPolicyCases(t *testing.T) {
	eng, err := policy.New(policy.Config{EvalTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCluster(t, clusterOpts{seed: 11, tweak: func(_ string, cfg *coordinator.Config) { cfg.Policy = eng }})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range cases.Shards() {
		if err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error { return n.RegisterShard(ctx, s) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range cases.All() {
		t.Run(tc.Name, func(t *testing.T) {
			d, err := c.propose(ctx, "p", tc.Proposal)
			if errors.Is(err, coordinator.ErrInvalid) && !tc.Allow {
				// Structural problems (a player twice) are refused before policy runs.
				t.Logf("refused before policy: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.GetPolicyRevision() != eng.Revision() {
				t.Fatalf("revision %q, want %q", d.GetPolicyRevision(), eng.Revision())
			}
			if tc.Allow {
				if d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
					t.Fatalf("allowed case: %v", d)
				}
				return
			}
			if d.GetReason() != smv1.Reason_REASON_POLICY_DENIED {
				t.Fatalf("denied case: %v", d)
			}
			var codes []string
			for _, den := range d.GetDenials() {
				codes = append(codes, den.GetCode())
			}
			slices.Sort(codes)
			codes = slices.Compact(codes)
			if !slices.Equal(codes, tc.Codes) {
				t.Fatalf("codes %v, want %v", codes, tc.Codes)
			}
			_, l, _ := c.lc.Leader(ctx)
			for _, tm := range tc.Proposal.GetTeams() {
				for _, p := range tm.GetPlayers() {
					if ls, ok := l.FSM().Lease(p.GetPlayerId()); ok && ls.TxID == d.GetTxid() {
						t.Fatalf("denied proposal leased %s", p.GetPlayerId())
					}
				}
			}
			rec, err := l.Status(ctx, d.GetTxid())
			if err != nil || rec.GetDecision().GetPolicyRevision() != eng.Revision() || len(rec.GetDecision().GetDenials()) == 0 {
				t.Fatalf("txn record %v %v lacks the verdict", rec, err)
			}
		})
	}
	requireClean(t, c.check(20*time.Second))
}
