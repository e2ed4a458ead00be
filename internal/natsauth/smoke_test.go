package natsauth_test

import (
	"context"
	"testing"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// With every party on its own generated credentials, a match commits end to end.
func TestSecuredMatchCommits(t *testing.T) {
	s := startStack(t, "s1", "s2")
	_, cli := s.proposer("mm1")
	if cli.Identity() != "proposer-mm1" {
		t.Fatalf("identity %q", cli.Identity())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := cli.Propose(ctx, duel("m1", "s1", "s2"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("decision %v, %v", d, err)
	}
}
