package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

const testTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

var _ twophase.OutcomeQuerier = client.StatusQuerier{}

// The client and the server agree on the wire names they each define.
func TestWireNamesAgree(t *testing.T) {
	if client.HeaderReply != natsapi.HeaderReply {
		t.Fatalf("reply header: client %q, server %q", client.HeaderReply, natsapi.HeaderReply)
	}
	// The client builds the lease subject itself (natsutil has no builder for it yet);
	// Renew and Release in the end-to-end tests prove the two agree.
	if got := natsapi.LeaseSubject(natsutil.MustSubjects("acme")); got != "acme.v1.lease" {
		t.Fatalf("lease subject %q", got)
	}
}

func TestProposeEndToEnd(t *testing.T) {
	c := startCluster(t)
	nc := c.Connect()
	cl := newClient(t, nc, client.Config{})
	ctx := ctxFor(t, 30*time.Second)
	var decided []*smv1.Decision

	p := proposal("e2e-1")
	d, err := cl.Propose(client.WithTraceParent(ctx, testTP), p)
	if err != nil {
		t.Fatal(err)
	}
	if d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED || d.GetTxid() == "" || d.GetProposalId() != "e2e-1" {
		t.Fatalf("decision = %v", d)
	}
	decided = append(decided, d)
	// The same proposal id again: the same transaction's decision.
	d2, err := cl.Propose(ctx, p)
	if err != nil || d2.GetTxid() != d.GetTxid() || d2.GetOutcome() != d.GetOutcome() {
		t.Fatalf("repeat = %v, %v; first txid %s", d2, err, d.GetTxid())
	}
	if ids := c.Txids("e2e-1"); len(ids) != 1 || ids[0] != d.GetTxid() {
		t.Fatalf("txids for e2e-1 = %v", ids)
	}

	// Status by txid and by proposal id.
	for _, id := range []string{d.GetTxid(), "e2e-1"} {
		rec, err := cl.Status(ctx, id)
		if err != nil || rec.GetTxid() != d.GetTxid() || rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("Status(%s) = %v, %v", id, rec, err)
		}
	}
	if _, err := cl.Status(ctx, "no-such-txn"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Status(unknown) = %v", err)
	}
	if o, err := (client.StatusQuerier{Client: cl, Timeout: 5 * time.Second}).Outcome(ctx, d.GetTxid()); err != nil || o != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("Outcome = %v, %v", o, err)
	}

	// A player held by the live match: an ABORTED decision, not an error.
	busy := proposal("e2e-busy")
	busy.Teams[0].Players[0].PlayerId = p.Teams[0].Players[0].PlayerId
	db, err := cl.Propose(ctx, busy)
	if err != nil || db.GetOutcome() != smv1.Outcome_OUTCOME_ABORTED || db.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("busy player: %v, %v", db, err)
	}
	decided = append(decided, db)

	// Leases: renew, release, then both conflict.
	if err := cl.Renew(ctx, d.GetTxid()); err != nil {
		t.Fatalf("Renew = %v", err)
	}
	if err := cl.Release(ctx, d.GetTxid()); err != nil {
		t.Fatalf("Release = %v", err)
	}
	if rec, err := cl.Status(ctx, d.GetTxid()); err != nil || rec.GetLeaseEnd() != "released" {
		t.Fatalf("after release: %v, %v", rec, err)
	}
	if err := cl.Renew(ctx, d.GetTxid()); !errors.Is(err, client.ErrConflict) || client.IsRetryable(err) {
		t.Fatalf("Renew after release = %v", err)
	}
	if err := cl.Release(ctx, d.GetTxid()); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("second Release = %v", err)
	}
	if err := cl.Renew(ctx, "no-such-txn"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Renew(unknown) = %v", err)
	}

	// Invalid proposals fail at once, naming the field, and change nothing.
	for _, tc := range []struct {
		name, field string
		p           *smv1.Proposal
	}{
		{"no teams", "teams", &smv1.Proposal{ProposalId: "e2e-bad-1", MatchTtlMs: 1000}},
		{"unknown shard", "shard_id", func() *smv1.Proposal {
			p := proposal("e2e-bad-2")
			p.Teams[1].Players[0].ShardId = "s9"
			return p
		}()},
		{"no ttl", "match_ttl_ms", func() *smv1.Proposal {
			p := proposal("e2e-bad-3")
			p.MatchTtlMs = 0
			return p
		}()},
		{"no id", "proposal_id", &smv1.Proposal{}},
	} {
		_, err := cl.Propose(ctx, tc.p)
		var inv *client.InvalidError
		if !errors.As(err, &inv) || inv.Field != tc.field || !errors.Is(err, client.ErrInvalid) || client.IsRetryable(err) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if ids := c.Txids(tc.p.GetProposalId()); len(ids) != 0 {
			t.Errorf("%s: created %v", tc.name, ids)
		}
	}

	// Shard registration.
	if err := cl.RegisterShard(ctx, &smv1.ShardInfo{ShardId: "s3", Region: "us-east"}); err != nil {
		t.Fatalf("RegisterShard = %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "every node to know s3", func() error {
		for i := 0; i < c.Size(); i++ {
			if _, ok := c.Node(i).FSM().Shard("s3"); !ok {
				return fmt.Errorf("%s does not know s3", c.Node(i).ID())
			}
		}
		return nil
	})
	if err := cl.RegisterShard(ctx, &smv1.ShardInfo{ShardId: "s.4"}); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("RegisterShard(s.4) = %v", err)
	}

	// One event per decision, with the txid as message id and the proposer's trace.
	events := readEvents(t, nc, len(decided))
	for _, d := range decided {
		ev, ok := events[d.GetTxid()]
		if !ok {
			t.Fatalf("no event for %s (%s)", d.GetTxid(), d.GetProposalId())
		}
		want := "sm.v1.events.match.aborted"
		if d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			want = "sm.v1.events.match.committed"
		}
		if ev.subject != want || ev.d.GetOutcome() != d.GetOutcome() {
			t.Errorf("event for %s on %s: %v", d.GetTxid(), ev.subject, ev.d)
		}
	}
	if tp := events[d.GetTxid()].tp; tp != testTP {
		t.Errorf("event traceparent = %q", tp)
	}
}

type recvEvent struct {
	subject, tp string
	d           *smv1.Decision
}

// readEvents waits until SM_EVENTS holds want messages and returns them by txid,
// failing on a txid stored twice.
func readEvents(tb testing.TB, nc *nats.Conn, want int) map[string]recvEvent {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := ctxFor(tb, 20*time.Second)
	st, err := js.Stream(ctx, "SM_EVENTS")
	if err != nil {
		tb.Fatal(err)
	}
	testutil.WaitFor(tb, 10*time.Second, "the events in SM_EVENTS", func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if n := info.State.Msgs; n != uint64(want) {
			return fmt.Errorf("SM_EVENTS holds %d events, want %d", n, want)
		}
		return nil
	})
	out := map[string]recvEvent{}
	info, _ := st.Info(ctx)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatal(err)
		}
		d := new(smv1.Decision)
		if err := proto.Unmarshal(m.Data, d); err != nil {
			tb.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != d.GetTxid() {
			tb.Errorf("event msg id %q for txid %q", got, d.GetTxid())
		}
		if _, dup := out[d.GetTxid()]; dup {
			tb.Errorf("txid %s published twice", d.GetTxid())
		}
		out[d.GetTxid()] = recvEvent{subject: m.Subject, tp: m.Header.Get("traceparent"), d: d}
	}
	return out
}

// A proposal whose answer never reaches its proposer is still decided once, and the
// proposer learns that decision from Status, not from a second match.
func TestLostReplyAnsweredByStatus(t *testing.T) {
	c := startCluster(t)
	nc := c.Connect()
	cl := newClient(t, nc, client.Config{AttemptTimeout: 200 * time.Millisecond})
	ctx := ctxFor(t, 30*time.Second)

	// Publish as a client would, then "lose" the inbox: nobody listens on it.
	p := proposal("lost-1")
	data, _ := proto.Marshal(p)
	js, _ := jetstream.New(nc)
	msg := &nats.Msg{Subject: "sm.v1.req.propose", Data: data, Header: nats.Header{client.HeaderReply: {nc.NewInbox()}}}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID("lost-1")); err != nil {
		t.Fatal(err)
	}
	var first *smv1.TxnRecord
	testutil.WaitFor(t, 10*time.Second, "lost-1 to commit", func() error {
		rec, err := cl.Status(ctx, "lost-1")
		if err != nil {
			return err
		}
		if rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			return fmt.Errorf("state %s", rec.GetState())
		}
		first = rec
		return nil
	})
	// The proposer, not knowing, proposes again with the same id.
	d, err := cl.Propose(ctx, p)
	if err != nil || d.GetTxid() != first.GetTxid() {
		t.Fatalf("Propose = %v, %v; want txid %s", d, err, first.GetTxid())
	}
	if ids := c.Txids("lost-1"); len(ids) != 1 {
		t.Fatalf("txids = %v", ids)
	}
	for _, id := range c.ShardIDs() {
		if n := c.Shard(id).Commits()[first.GetTxid()]; n != 1 {
			t.Errorf("%s committed %s %d times", id, first.GetTxid(), n)
		}
	}
}

// When the leader never answers the proposer's inbox (here: it refuses to publish to
// it), Propose finds the decision through Status after its attempt timeout.
func TestUnansweredProposeAsksStatus(t *testing.T) {
	c := natsapitest.Start(t, natsapitest.Options{API: func(_ string, cfg *natsapi.Config) {
		cfg.ReplyPrefixes = []string{"nowhere."}
	}})
	cl := newClient(t, c.Connect(), client.Config{AttemptTimeout: 200 * time.Millisecond})
	ctx := ctxFor(t, 30*time.Second)
	start := time.Now()
	d, err := cl.Propose(ctx, proposal("unanswered-1"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("Propose = %v, %v", d, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("answered in %s: the reply was not suppressed", el)
	}
	if ids := c.Txids("unanswered-1"); len(ids) != 1 || ids[0] != d.GetTxid() {
		t.Fatalf("txids = %v", ids)
	}
	var bad uint64
	for i := 0; i < c.Size(); i++ {
		bad += c.API(i).Stats().BadReply
	}
	if bad == 0 {
		t.Fatal("no server counted the refused reply address")
	}
}

// A proposal the stream lost before the leader saw it is re-sent by Propose once the
// leader reports NOT_FOUND, past the stream's dedupe of its message id, and decided once.
func TestProposalLostFromStreamIsResent(t *testing.T) {
	c := startCluster(t)
	nc := c.Connect()
	cl := newClient(t, nc, client.Config{AttemptTimeout: 150 * time.Millisecond})
	ctx := ctxFor(t, 30*time.Second)
	leader := c.WaitServing(ctx)
	srv, node := c.API(leader), c.Node(leader)
	term := node.Raft().CurrentTerm()
	srv.Leading(false, term) // the leader stops taking proposals for a while

	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "SM_REQ")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.Info(ctx)
	type result struct {
		d   *smv1.Decision
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := cl.Propose(ctx, proposal("gone-1"))
		done <- result{d, err}
	}()
	var seq uint64
	testutil.WaitFor(t, 5*time.Second, "the event to be published", func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.LastSeq == before.State.LastSeq {
			return errors.New("not published yet")
		}
		seq = info.State.LastSeq
		return nil
	})
	if err := st.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	srv.Leading(true, term)
	r := <-done
	if r.err != nil || r.d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("Propose = %v, %v", r.d, r.err)
	}
	if ids := c.Txids("gone-1"); len(ids) != 1 || ids[0] != r.d.GetTxid() {
		t.Fatalf("txids = %v", ids)
	}
	// The re-send that got through carried a fresh message id: the stream's dedupe
	// still remembered the lost one.
	info, _ := st.Info(ctx)
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "gone-1/1" {
		t.Fatalf("re-sent as %q, want gone-1/1", id)
	}
}

// A context that ends before any leader answers is ErrOutcomeUnknown carrying the
// proposal id; retrying the same proposal later gets its one decision.
func TestProposeOutcomeUnknownThenRetry(t *testing.T) {
	c := startCluster(t)
	cl := newClient(t, c.Connect(), client.Config{AttemptTimeout: 100 * time.Millisecond})
	ctx := ctxFor(t, 30*time.Second)
	leader := c.WaitServing(ctx)
	term := c.Node(leader).Raft().CurrentTerm()
	c.API(leader).Leading(false, term)

	p := proposal("unknown-1")
	short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancel()
	_, err := cl.Propose(short, p)
	var u *client.OutcomeUnknownError
	if !errors.As(err, &u) || u.ProposalID != "unknown-1" || !client.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Propose with no leader serving = %v", err)
	}
	c.API(leader).Leading(true, term)
	d, err := cl.Propose(ctx, p)
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("retry = %v, %v", d, err)
	}
	if ids := c.Txids("unknown-1"); len(ids) != 1 {
		t.Fatalf("txids = %v", ids)
	}
}
