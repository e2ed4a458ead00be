package natsapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// publishOn publishes raw proposal bytes on subject with h as headers.
func publishOn(tb testing.TB, nc *nats.Conn, subject, msgID string, data []byte, h nats.Header) {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: h}, jetstream.WithMsgID(msgID)); err != nil {
		tb.Fatal(err)
	}
}

// settled waits until the intake consumer has nothing pending or unacked.
func settled(tb testing.TB, nc *nats.Conn) {
	tb.Helper()
	testutil.WaitFor(tb, 5*time.Second, "the intake to settle every message", func() error {
		if info := intakeInfo(tb, nc); info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("intake %d unacked, %d pending", info.NumAckPending, info.NumPending)
		}
		return nil
	})
}

// A proposal over MaxProposalBytes is answered INVALID naming the size, terminated,
// and never reaches the node; one under it does (negative control).
func TestOversizedProposalAnsweredInvalid(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, func(c *natsapi.Config) { c.MaxProposalBytes = 200 })
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)

	big := mustMarshal(t, &smv1.Proposal{ProposalId: "big", Metadata: map[string]string{"pad": strings.Repeat("x", 300)}})
	publishProposal(t, nc, "big", big, reply)
	resp, _ := nextResponse(t, sub)
	e := resp.GetError()
	if e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != "proposal" ||
		!strings.Contains(e.GetMessage(), fmt.Sprintf("%d bytes", len(big))) || !strings.Contains(e.GetMessage(), "200") {
		t.Fatalf("oversized answer = %v", resp)
	}
	settled(t, nc)
	if n := node.Calls("Propose"); n != 0 {
		t.Fatalf("node saw the oversized proposal (%d calls)", n)
	}
	if st := srv.Stats(); st.Oversized != 1 || st.Malformed != 0 || st.ErrorCodes[smv1.ErrorCode_ERROR_CODE_INVALID] != 1 {
		t.Fatalf("stats = %+v", st)
	}

	publishProposal(t, nc, "small", mustMarshal(t, &smv1.Proposal{ProposalId: "small"}), reply)
	if resp, _ := nextResponse(t, sub); resp.GetDecision().GetProposalId() != "small" {
		t.Fatalf("small answer = %v", resp)
	}
	if n := node.Calls("Propose"); n != 1 {
		t.Fatalf("node calls = %d, want 1", n)
	}
}

// A status, lease or register request over MaxRequestBytes is answered INVALID
// (field "request") without the node seeing it.
func TestOversizedRequestAnsweredInvalid(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, func(c *natsapi.Config) { c.MaxRequestBytes = 64 })
	lead(t, srv, 1)
	subj := srv.Subjects()
	long := strings.Repeat("x", 100)
	for _, r := range []struct {
		subject string
		req     proto.Message
		resp    interface {
			proto.Message
			GetError() *smv1.ApiError
		}
		method string
	}{
		{subj.Status(), &smv1.StatusRequest{Id: long}, &smv1.StatusResponse{}, "Status"},
		{natsapi.LeaseSubject(subj), &smv1.LeaseRequest{Txid: long, Op: smv1.LeaseOp_LEASE_OP_RENEW}, &smv1.LeaseResponse{}, "Renew"},
		{subj.Register(), &smv1.ShardInfo{ShardId: "s1", Region: long}, &smv1.RegisterShardResponse{}, "RegisterShard"},
	} {
		m, err := nc.Request(r.subject, mustMarshal(t, r.req), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(m.Data, r.resp); err != nil {
			t.Fatal(err)
		}
		if e := r.resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != "request" || !strings.Contains(e.GetMessage(), "over the limit of 64") {
			t.Errorf("%s: answer = %v", r.subject, r.resp)
		}
		if n := node.Calls(r.method); n != 0 {
			t.Errorf("%s: node saw it (%d calls)", r.subject, n)
		}
	}
	if st := srv.Stats(); st.Oversized != 3 || st.Malformed != 0 {
		t.Fatalf("stats = %+v", st)
	}
	// Negative control: a small request reaches the node.
	if _, err := nc.Request(subj.Status(), mustMarshal(t, &smv1.StatusRequest{Id: "p1"}), 5*time.Second); err != nil || node.Calls("Status") != 1 {
		t.Fatalf("small status request: %v, %d calls", err, node.Calls("Status"))
	}
}

// Each proposer identity has its own token bucket, the anonymous subject another:
// past its burst a proposer is answered RATE_LIMITED, acked, and the node never sees
// the proposal; the bucket refills with the (injected) clock.
func TestProposerRateLimited(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	srv := newServer(t, s, node, func(c *natsapi.Config) {
		c.Clock, c.ProposerRate, c.ProposerBurst, c.IntakeWorkers = clk, 1, 2, 1
	})
	lead(t, srv, 1)
	subj := srv.Subjects()
	mm1, err := subj.ProposeFrom("proposer-mm1")
	if err != nil {
		t.Fatal(err)
	}
	reply, sub := inbox(t, nc)
	seq := 0
	send := func(subject string) *smv1.ProposeResponse {
		t.Helper()
		seq++
		pid := fmt.Sprintf("p%d", seq)
		publishOn(t, nc, subject, pid, mustMarshal(t, &smv1.Proposal{ProposalId: pid}), nats.Header{natsapi.HeaderReply: {reply}})
		resp, _ := nextResponse(t, sub)
		return resp
	}
	limited := func(r *smv1.ProposeResponse) bool {
		return r.GetError().GetCode() == smv1.ErrorCode_ERROR_CODE_RATE_LIMITED
	}
	for i, want := range []bool{false, false, true, true} {
		if r := send(mm1); limited(r) != want {
			t.Fatalf("mm1 proposal %d: rate limited = %v, want %v (%v)", i+1, limited(r), want, r)
		}
	}
	// The anonymous bucket is another one: not drained by mm1.
	for i, want := range []bool{false, false, true} {
		if r := send(subj.Propose()); limited(r) != want {
			t.Fatalf("anonymous proposal %d: rate limited = %v, want %v (%v)", i+1, limited(r), want, r)
		}
	}
	if n := node.Calls("Propose"); n != 4 {
		t.Fatalf("node saw %d proposals, want the 4 admitted", n)
	}
	clk.Advance(time.Second) // one token back for each
	if r := send(mm1); limited(r) {
		t.Fatalf("after a second mm1 is still limited: %v", r)
	}
	if r := send(mm1); !limited(r) {
		t.Fatalf("mm1 got a second token from one second: %v", r)
	}
	settled(t, nc) // rate-limited proposals are acked, not left for redelivery
	st := srv.Stats()
	if st.RateLimited != 4 || st.ErrorCodes[smv1.ErrorCode_ERROR_CODE_RATE_LIMITED] != 4 || st.ProposersTracked != 2 || node.Calls("Propose") != 5 {
		t.Fatalf("stats = %+v, node calls %d", st, node.Calls("Propose"))
	}
}

// Without a rate every proposal passes (the limiter is off by default).
func TestProposerRateUnlimitedByDefault(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	reply, sub := inbox(t, nc)
	for i := range 20 {
		pid := fmt.Sprintf("p%d", i)
		publishProposal(t, nc, pid, mustMarshal(t, &smv1.Proposal{ProposalId: pid}), reply)
	}
	for range 20 {
		if r, _ := nextResponse(t, sub); r.GetDecision() == nil {
			t.Fatalf("answer = %v", r)
		}
	}
	if st := srv.Stats(); st.RateLimited != 0 || st.ProposersTracked != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A forged Sm-Reply naming a shard's command subject (or any subject that is not a
// client inbox) makes the leader publish nothing there: the proposal is terminated
// unread. The same for a core request whose reply subject is not an inbox. The
// subscription on the command subject is shown to see what is published there.
func TestForgedReplyNotPublished(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, func(c *natsapi.Config) { c.IntakeWorkers = 1 })
	lead(t, srv, 1)
	subj := srv.Subjects()
	cmd, err := subj.ShardCmd("s1")
	if err != nil {
		t.Fatal(err)
	}
	vote, _ := subj.CoordVote("s1")
	spy, err := nc.SubscribeSync(subj.Prefix() + ".v1.>")
	if err != nil {
		t.Fatal(err)
	}
	onCmd := func(wait time.Duration) []string {
		var got []string
		for {
			m, err := spy.NextMsg(wait)
			if err != nil {
				return got
			}
			if m.Subject == cmd || m.Subject == vote {
				got = append(got, m.Subject)
			}
		}
	}
	for i, forged := range []string{cmd, vote, "_INBOX", "_INBOX.*", "sm.v1.req.propose"} {
		pid := fmt.Sprintf("forged-%d", i)
		publishProposal(t, nc, pid, mustMarshal(t, &smv1.Proposal{ProposalId: pid}), forged)
	}
	// A core status request replying to the command subject.
	if err := nc.PublishRequest(subj.Status(), cmd, mustMarshal(t, &smv1.StatusRequest{Id: "p1"})); err != nil {
		t.Fatal(err)
	}
	// Barrier: with one intake worker, this is handled after every forged one.
	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "honest", mustMarshal(t, &smv1.Proposal{ProposalId: "honest"}), reply)
	if r, _ := nextResponse(t, sub); r.GetDecision().GetProposalId() != "honest" {
		t.Fatalf("honest answer = %v", r)
	}
	if _, err := nc.Request(subj.Status(), mustMarshal(t, &smv1.StatusRequest{Id: "p1"}), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	settled(t, nc)
	// Anything the server published before the honest answer (same connection) is
	// already queued on the spy.
	if got := onCmd(10 * time.Millisecond); len(got) != 0 {
		t.Fatalf("the leader published on %v", got)
	}
	if n := node.Calls("Propose"); n != 1 {
		t.Fatalf("node saw %d proposals, want only the honest one", n)
	}
	if n := node.Calls("Status"); n != 1 {
		t.Fatalf("node saw %d status requests, want only the honest one", n)
	}
	if st := srv.Stats(); st.ForgedReply != 6 || st.BadReply != 0 {
		t.Fatalf("stats = %+v", st)
	}

	// Negative control: the spy does see a publish on the command subject.
	if err := nc.Publish(cmd, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := onCmd(2 * time.Second); len(got) != 1 {
		t.Fatalf("the spy saw %v of a publish on %s", got, cmd)
	}
}

// A proposer's own subject is taken by the intake, also when the consumer was made
// before proposers had subjects (its filter is updated when the leader binds).
func TestProposerSubjectTakenAfterConsumerUpdate(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	// The consumer as an older coordinator made it.
	if _, err := js.CreateOrUpdateConsumer(ctx, "SM_REQ", jetstream.ConsumerConfig{Durable: natsapi.DefaultConsumer,
		FilterSubject: "sm.v1.req.propose", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 512}); err != nil {
		t.Fatal(err)
	}
	node := newFakeNode()
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	if f := intakeInfo(t, nc).Config.FilterSubjects; len(f) != 2 {
		t.Fatalf("intake filter = %v, want the plain and the per-proposer subjects", f)
	}
	reply, sub := inbox(t, nc)
	mm1, _ := srv.Subjects().ProposeFrom("proposer-mm1")
	publishOn(t, nc, mm1, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), nats.Header{natsapi.HeaderReply: {reply}})
	if r, _ := nextResponse(t, sub); r.GetDecision().GetProposalId() != "p1" {
		t.Fatalf("answer = %v", r)
	}
	publishProposal(t, nc, "p2", mustMarshal(t, &smv1.Proposal{ProposalId: "p2"}), reply)
	if r, _ := nextResponse(t, sub); r.GetDecision().GetProposalId() != "p2" {
		t.Fatalf("answer = %v", r)
	}
}

func TestNewRejectsBadLimits(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	for _, c := range []natsapi.Config{
		{Node: newFakeNode(), Conn: nc, MaxProposalBytes: -1},
		{Node: newFakeNode(), Conn: nc, MaxRequestBytes: -1},
		{Node: newFakeNode(), Conn: nc, ProposerRate: -1},
		{Node: newFakeNode(), Conn: nc, ProposerBurst: 3},
		{Node: newFakeNode(), Conn: nc, ProposerRate: 1, MaxProposers: -1},
	} {
		if srv, err := natsapi.New(c); err == nil {
			_ = srv.Close()
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}
