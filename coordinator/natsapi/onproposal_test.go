package natsapi_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestOnProposalCountsEachProposalOnce: a proposal redelivered until it gets a
// definite answer is counted once, a second proposal once more, and a malformed one
// not at all (it is Malformed).
func TestOnProposalCountsEachProposalOnce(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	node.propose = func(_ context.Context, p *smv1.Proposal, call int) (*smv1.Decision, error) {
		if call <= 2 { // p1 twice without an answer
			return nil, &coordinator.NotLeaderError{LeaderID: "c2"}
		}
		return committed(p), nil
	}
	var taken atomic.Int64
	srv := newServer(t, s, node, func(c *natsapi.Config) {
		c.NakDelay = 10 * time.Millisecond
		c.OnProposal = func() { taken.Add(1) }
	})
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	if resp, _ := nextResponse(t, sub); resp.GetDecision().GetProposalId() != "p1" {
		t.Fatalf("p1: %v", resp)
	}
	publishProposal(t, nc, "p2", mustMarshal(t, &smv1.Proposal{ProposalId: "p2"}), reply)
	if resp, _ := nextResponse(t, sub); resp.GetDecision().GetProposalId() != "p2" {
		t.Fatalf("p2: %v", resp)
	}
	publishProposal(t, nc, "junk", garbage, reply)
	if resp, _ := nextResponse(t, sub); resp.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID {
		t.Fatalf("junk: %v", resp)
	}
	st := srv.Stats()
	if got := taken.Load(); got != 2 || st.Proposals != 5 || st.Redelivered != 2 || st.Malformed != 1 {
		t.Fatalf("OnProposal %d times, want 2; stats %+v", got, st)
	}
}

// TestOnProposalAcrossLeaders: over two nodes, each proposal counts once: one the
// first leader took and lost leadership before answering (the next leader's delivery
// is a redelivery), and one published around the change (taken by either).
func TestOnProposalAcrossLeaders(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	started := make(chan struct{}, 4)
	a := newFakeNode()
	a.propose = func(ctx context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, &coordinator.UnknownOutcomeError{ProposalID: p.GetProposalId(), Cause: ctx.Err()}
	}
	var taken atomic.Int64
	count := func(c *natsapi.Config) { c.OnProposal = func() { taken.Add(1) } }
	srvA := newServer(t, s, a, count)
	srvB := newServer(t, s, newFakeNode(), count)
	lead(t, srvA, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	<-started // a is working on p1
	publishProposal(t, nc, "p2", mustMarshal(t, &smv1.Proposal{ProposalId: "p2"}), reply)
	// a takes p2 too before it steps down. (A proposal a had fetched but not yet
	// handled would reach b as a redelivery and be counted nowhere: OnProposal counts
	// first deliveries, and CI once stepped a down in that window.)
	<-started
	srvA.Leading(false, 1)
	lead(t, srvB, 2)
	decided := map[string]bool{}
	for len(decided) < 2 {
		resp, _ := nextResponse(t, sub)
		if d := resp.GetDecision(); d != nil {
			decided[d.GetProposalId()] = true
		}
	}
	if got := taken.Load(); got != 2 {
		t.Fatalf("OnProposal %d times over both nodes, want 2; a %+v, b %+v", got, srvA.Stats(), srvB.Stats())
	}
	if st := srvB.Stats(); st.Redelivered < 1 {
		t.Fatalf("b saw no redelivery: %+v", st)
	}
}
