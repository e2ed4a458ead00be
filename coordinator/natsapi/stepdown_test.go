package natsapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestLeaderCutOffFromNATSStepsDown: a leader whose NATS connection is gone hands
// leadership over, and a node that can reach NATS serves proposals again; without
// StepDown the leader would hold on and every proposal would wait.
func TestLeaderCutOffFromNATSStepsDown(t *testing.T) {
	var c *natsapitest.Cluster
	c = natsapitest.Start(t, natsapitest.Options{API: func(id string, cfg *natsapi.Config) {
		i := int(id[1] - '1')
		cfg.StepDownAfter = time.Second
		cfg.StepDown = func() error { return c.Node(i).TransferLeadership() }
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old := c.WaitServing(ctx)
	c.Conn(old).Close() // as a partition between the leader and NATS would

	nc := c.Connect()
	testutil.WaitFor(t, 20*time.Second, "another leader once the old one lost NATS", func() error {
		if next := c.WaitServing(ctx); next == old {
			return fmt.Errorf("node %d still leads without NATS", old)
		}
		return nil
	})
	if got := c.API(old).Stats().StepDowns; got == 0 {
		t.Errorf("node %d stepped down %d times", old, got)
	}
	p := &smv1.Proposal{ProposalId: "after-stepdown", Mode: "duel", MatchTtlMs: 5000, Teams: []*smv1.Team{
		{Players: []*smv1.Player{{PlayerId: "a", ShardId: "s1"}}},
		{Players: []*smv1.Player{{PlayerId: "b", ShardId: "s2"}}}}}
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, p.GetProposalId(), mustMarshal(t, p), reply)
	if resp, _ := nextResponse(t, sub); resp.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("proposal after the step-down: %v", resp)
	}
}
