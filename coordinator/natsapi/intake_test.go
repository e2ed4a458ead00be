package natsapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func TestNewValidates(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	for _, c := range []natsapi.Config{
		{Conn: nc},
		{Node: newFakeNode()},
		{Node: newFakeNode(), Conn: nc, IntakeWorkers: 8, MaxAckPending: 4},
		{Node: newFakeNode(), Conn: nc, AckWait: time.Millisecond},
		{Node: newFakeNode(), Conn: nc, NakDelay: -1},
		{Node: newFakeNode(), Conn: nc, Prefix: "a..b"},
	} {
		if srv, err := natsapi.New(c); err == nil {
			_ = srv.Close()
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

// A proposal is answered to its Sm-Reply inbox with the decision and the request's
// traceparent, and acked; the node saw the trace in its context.
func TestProposalAnsweredAndAcked(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	seenTP := make(chan string, 1)
	node.propose = func(ctx context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		tp, _ := natsutil.TraceParentFrom(ctx)
		seenTP <- tp
		return committed(p), nil
	}
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	resp, m := nextResponse(t, sub)
	if resp.GetDecision().GetTxid() != "tx-p1" {
		t.Fatalf("response = %v", resp)
	}
	if tp := m.Header.Get(natsutil.TraceParentHeader); tp != testTP {
		t.Errorf("reply traceparent = %q", tp)
	}
	if tp := <-seenTP; tp != testTP {
		t.Errorf("node's context traceparent = %q", tp)
	}
	testutil.WaitFor(t, 5*time.Second, "the proposal to be acked", func() error {
		if info := intakeInfo(t, nc); info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
			return fmt.Errorf("intake %d unacked, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	if st := srv.Stats(); st.Proposals != 1 || st.Committed != 1 || st.Acked != 1 || st.Nakd != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// Without a definite answer (not leader, unknown outcome) a proposal is nak'd and
// redelivered until one comes; OUTCOME_UNKNOWN is passed on to the proposer at once.
func TestNoDefiniteAnswerIsRedelivered(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	node.propose = func(_ context.Context, p *smv1.Proposal, call int) (*smv1.Decision, error) {
		switch call {
		case 1:
			return nil, &coordinator.NotLeaderError{LeaderID: "c2"}
		case 2:
			return nil, &coordinator.UnknownOutcomeError{ProposalID: p.GetProposalId(), TxID: "tx-p1", Cause: raftLost}
		case 3:
			return nil, errors.New("policy engine unavailable")
		}
		return committed(p), nil
	}
	srv := newServer(t, s, node, func(c *natsapi.Config) { c.NakDelay = 10 * time.Millisecond })
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	resp, _ := nextResponse(t, sub)
	if e := resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN || e.GetTxid() != "tx-p1" {
		t.Fatalf("first response = %v, want OUTCOME_UNKNOWN", resp)
	}
	resp, _ = nextResponse(t, sub)
	if resp.GetDecision().GetTxid() != "tx-p1" {
		t.Fatalf("second response = %v, want the decision", resp)
	}
	st := srv.Stats()
	if node.Calls("Propose") != 4 || st.Nakd != 3 || st.Redelivered != 3 || st.Unknown != 1 || st.Acked != 1 {
		t.Fatalf("calls %d, stats %+v", node.Calls("Propose"), st)
	}
}

var raftLost = errors.New("leadership lost while committing log")

// The node's INVALID is final: answered with the field, acked, never redelivered.
func TestInvalidProposalAcked(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	node.propose = func(context.Context, *smv1.Proposal, int) (*smv1.Decision, error) {
		return nil, &coordinator.InvalidError{Field: "teams", Reason: "no teams"}
	}
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	resp, _ := nextResponse(t, sub)
	if e := resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != "teams" {
		t.Fatalf("response = %v", resp)
	}
	testutil.WaitFor(t, 5*time.Second, "the invalid proposal to be acked", func() error {
		if info := intakeInfo(t, nc); info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
			return fmt.Errorf("intake %d unacked", info.NumAckPending)
		}
		return nil
	})
	if st := srv.Stats(); st.Invalid != 1 || st.ErrorCodes[smv1.ErrorCode_ERROR_CODE_INVALID] != 1 || node.Calls("Propose") != 1 {
		t.Fatalf("stats %+v, calls %d", st, node.Calls("Propose"))
	}
}

// Undecodable proposals never reach the node: answered INVALID when they name an inbox,
// terminated either way, counted.
func TestMalformedProposals(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "bad-1", garbage, reply)
	publishProposal(t, nc, "bad-2", garbage, "")
	publishProposal(t, nc, "bad-3", mustMarshal(t, &smv1.Proposal{ProposalId: "ok"}), "_INBOX.*") // not an inbox: terminated unread
	resp, _ := nextResponse(t, sub)
	if e := resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != "proposal" {
		t.Fatalf("response = %v", resp)
	}
	testutil.WaitFor(t, 5*time.Second, "every intake message to be acked", func() error {
		info := intakeInfo(t, nc)
		if info.NumAckPending != 0 || info.AckFloor.Stream != 3 || info.NumRedelivered != 0 {
			return fmt.Errorf("intake: %d unacked, floor %d, %d redelivered", info.NumAckPending, info.AckFloor.Stream, info.NumRedelivered)
		}
		return nil
	})
	st := srv.Stats()
	if st.Malformed != 2 || st.BadReply != 0 || st.ForgedReply != 1 || node.Calls("Propose") != 0 {
		t.Fatalf("stats %+v, propose calls %d", st, node.Calls("Propose"))
	}
}

// A proposal in progress when leadership ends is cancelled and handed back at once,
// and the next leader answers it.
func TestLeadershipLossHandsProposalsBack(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	started := make(chan struct{}, 1)
	a := newFakeNode()
	a.propose = func(ctx context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, &coordinator.UnknownOutcomeError{ProposalID: p.GetProposalId(), Cause: ctx.Err()}
	}
	b := newFakeNode()
	srvA := newServer(t, s, a, func(c *natsapi.Config) { c.NodeID = "a" })
	srvB := newServer(t, s, b, func(c *natsapi.Config) { c.NodeID = "b" })
	lead(t, srvA, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	<-started
	srvA.Leading(false, 1)
	lead(t, srvB, 2)
	for {
		resp, _ := nextResponse(t, sub)
		if resp.GetDecision() != nil {
			break
		}
		if resp.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN {
			t.Fatalf("response = %v", resp)
		}
	}
	if a.Calls("Propose") != 1 || b.Calls("Propose") != 1 {
		t.Fatalf("calls: a %d, b %d", a.Calls("Propose"), b.Calls("Propose"))
	}
	if st := srvA.Stats(); st.Nakd != 1 || st.Acked != 0 {
		t.Fatalf("a's stats %+v", st)
	}
}

// A server that does not lead takes nothing and answers nothing; what was published
// meanwhile waits in the stream for the leader.
func TestNotLeadingServesNothing(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, nil)
	// Bind the consumer once, then stop leading.
	lead(t, srv, 1)
	srv.Leading(false, 1)
	if srv.Serving() || srv.IsLeading() {
		t.Fatal("still serving after Leading(false)")
	}
	// The unsubscription reaches the server shortly after Leading returns.
	testutil.WaitFor(t, 5*time.Second, "status to go unanswered while not leading", func() error {
		_, err := nc.Request("sm.v1.status", mustMarshal(t, &smv1.StatusRequest{Id: "x"}), 100*time.Millisecond)
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("status while not leading: %v", err)
		}
		return nil
	})
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	// The consumer's pending count catches up with the stream asynchronously: poll.
	testutil.WaitFor(t, 5*time.Second, "the proposal to wait in SM_REQ", func() error {
		if info := intakeInfo(t, nc); info.NumPending != 1 {
			return fmt.Errorf("pending %d", info.NumPending)
		}
		return nil
	})
	if n := node.Calls("Propose"); n != 0 {
		t.Fatalf("taken while not leading: %d Propose calls", n)
	}
	lead(t, srv, 2)
	if resp, _ := nextResponse(t, sub); resp.GetDecision().GetTxid() != "tx-p1" {
		t.Fatalf("response = %v", resp)
	}
}

// A proposal that takes longer than AckWait is kept alive, not redelivered meanwhile.
func TestSlowProposalKeptAlive(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	node.propose = func(ctx context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		select {
		case <-time.After(1800 * time.Millisecond): // AckWait is 1s
		case <-ctx.Done():
		}
		return committed(p), nil
	}
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), reply)
	if resp, _ := nextResponse(t, sub); resp.GetDecision() == nil {
		t.Fatalf("response = %v", resp)
	}
	if n := node.Calls("Propose"); n != 1 {
		t.Fatalf("Propose called %d times: redelivered while in progress", n)
	}
	if st := srv.Stats(); st.Redelivered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Close while proposals are in progress returns once their handlers have, and the
// proposals go back to the stream.
func TestCloseWhileBusy(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	started := make(chan struct{}, 8)
	node.propose = func(ctx context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	for i := range 4 {
		publishProposal(t, nc, fmt.Sprint("p", i), mustMarshal(t, &smv1.Proposal{ProposalId: fmt.Sprint("p", i)}), "")
	}
	for range 4 {
		<-started
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Nakd != 4 {
		t.Fatalf("stats %+v", st)
	}
	srv.Leading(true, 2) // after Close: ignored
	if srv.IsLeading() {
		t.Fatal("leading after Close")
	}
}
