package admin

import (
	"fmt"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The denial ring keeps the newest RecentDenialsKept, newest first, and the counters
// count every decision by outcome and reason.
func TestDecisionTally(t *testing.T) {
	var tl decisionTally
	if got := tl.recent(); len(got) != 0 {
		t.Fatalf("empty tally: %v", got)
	}
	const n = RecentDenialsKept + 13
	for i := range n {
		tl.observe(&smv1.Decision{Txid: fmt.Sprintf("tx-%d-0", i), Outcome: smv1.Outcome_OUTCOME_ABORTED,
			Reason: smv1.Reason_REASON_POLICY_DENIED, DecidedUnixMs: int64(1000 + i),
			Denials: []*smv1.Denial{{Code: "LATENCY", Message: "too far"}}})
		tl.observe(&smv1.Decision{Txid: fmt.Sprintf("tx-%d-1", i), Outcome: smv1.Outcome_OUTCOME_COMMITTED})
	}
	tl.observe(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_SHARD_TIMEOUT})
	tl.observe(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_PENDING})
	got := tl.recent()
	if len(got) != RecentDenialsKept {
		t.Fatalf("%d denials kept, want %d", len(got), RecentDenialsKept)
	}
	for i, d := range got {
		want := fmt.Sprintf("tx-%d-0", n-1-i)
		if d.TxID != want || d.At.UnixMilli() != int64(1000+n-1-i) || len(d.Denials) != 1 || d.Denials[0].Code != "LATENCY" {
			t.Fatalf("denial %d: %+v, want %s newest first", i, d, want)
		}
	}
	if c := tl.commits.Load(); c != n {
		t.Errorf("commits %d, want %d", c, n)
	}
	if a := tl.aborts[smv1.Reason_REASON_POLICY_DENIED].Load(); a != n {
		t.Errorf("policy aborts %d, want %d", a, n)
	}
	if a := tl.aborts[smv1.Reason_REASON_SHARD_TIMEOUT].Load(); a != 1 {
		t.Errorf("timeout aborts %d, want 1", a)
	}
}
