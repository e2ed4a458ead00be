package natsapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

type storedEvent struct {
	subject, msgID, tp string
	d                  *smv1.Decision
}

// waitEvents waits until SM_EVENTS holds exactly n events and returns them in order.
func waitEvents(tb testing.TB, nc *nats.Conn, n int) []storedEvent {
	tb.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "SM_EVENTS")
	if err != nil {
		tb.Fatal(err)
	}
	var info *jetstream.StreamInfo
	testutil.WaitFor(tb, 5*time.Second, "the events in SM_EVENTS", func() error {
		if info, err = st.Info(ctx); err != nil {
			return err
		}
		if info.State.Msgs != uint64(n) {
			return fmt.Errorf("%d events, want %d", info.State.Msgs, n)
		}
		return nil
	})
	var out []storedEvent
	for seq := info.State.FirstSeq; n > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatal(err)
		}
		d := new(smv1.Decision)
		if err := proto.Unmarshal(m.Data, d); err != nil {
			tb.Fatal(err)
		}
		out = append(out, storedEvent{m.Subject, m.Header.Get(jetstream.MsgIDHeader), m.Header.Get("traceparent"), d})
	}
	return out
}

func decision(txid string, o smv1.Outcome, decidedAt time.Time) *smv1.Decision {
	d := &smv1.Decision{Txid: txid, ProposalId: "p-" + txid, Outcome: o}
	if !decidedAt.IsZero() {
		d.DecidedUnixMs = decidedAt.UnixMilli()
	}
	return d
}

// Every replica sees every decision; only the leader publishes. A new leader replays
// what it saw within the window: what the old leader published is deduplicated, what
// it did not is published now, and history older than the window stays history.
func TestEventsFromLeaderOnlyAndReplayedAtTakeover(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	a := newServer(t, s, newFakeNode(), func(c *natsapi.Config) { c.NodeID = "a" })
	b := newServer(t, s, newFakeNode(), func(c *natsapi.Config) { c.NodeID = "b" })
	lead(t, a, 1)
	now := time.Now()
	d1 := decision("tx-1", smv1.Outcome_OUTCOME_COMMITTED, now)
	a.Decided(d1)
	b.Decided(d1)
	ev := waitEvents(t, nc, 1)
	if ev[0].subject != "sm.v1.events.match.committed" || ev[0].msgID != "tx-1" {
		t.Fatalf("event = %+v", ev[0])
	}
	// Seen by b only (a applied it and died before publishing, say), and an old one.
	b.Decided(decision("tx-2", smv1.Outcome_OUTCOME_ABORTED, now))
	b.Decided(decision("tx-old", smv1.Outcome_OUTCOME_COMMITTED, now.Add(-time.Hour)))
	a.Leading(false, 1)
	lead(t, b, 2)
	ev = waitEvents(t, nc, 2)
	if ev[1].subject != "sm.v1.events.match.aborted" || ev[1].msgID != "tx-2" || ev[1].d.GetOutcome() != smv1.Outcome_OUTCOME_ABORTED {
		t.Fatalf("replayed event = %+v", ev[1])
	}
	testutil.WaitFor(t, 5*time.Second, "b's replay of the events", func() error {
		st := b.Stats()
		if st.EventsReplayed != 2 || st.EventsDeduplicated != 1 || st.EventsPublished != 1 {
			return fmt.Errorf("b's stats %+v", st)
		}
		return nil
	})
	if st := a.Stats(); st.EventsPublished != 1 || st.Decisions != 1 {
		t.Fatalf("a's stats %+v", st)
	}
}

// The replay window runs on the node's monotonic clock.
func TestReplayWindowIsMonotonic(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	clk := clock.NewFake(time.Now())
	b := newServer(t, s, newFakeNode(), func(c *natsapi.Config) { c.Clock, c.ReplayWindow = clk, time.Minute })
	b.Decided(decision("tx-a", smv1.Outcome_OUTCOME_COMMITTED, time.Time{}))
	clk.Advance(2 * time.Minute)
	b.Decided(decision("tx-b", smv1.Outcome_OUTCOME_COMMITTED, time.Time{}))
	lead(t, b, 1)
	if ev := waitEvents(t, nc, 1); ev[0].msgID != "tx-b" {
		t.Fatalf("replayed %+v", ev)
	}
	if st := b.Stats(); st.EventsReplayed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A decision applied while its proposal is handled carries the proposal's trace.
func TestEventCarriesProposalTrace(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	var srv *natsapi.Server
	node.propose = func(_ context.Context, p *smv1.Proposal, _ int) (*smv1.Decision, error) {
		d := committed(p)
		srv.Decided(d) // as the FSM does, before Propose returns
		return d, nil
	}
	srv = newServer(t, s, node, nil)
	lead(t, srv, 1)
	publishProposal(t, nc, "p1", mustMarshal(t, &smv1.Proposal{ProposalId: "p1"}), "")
	ev := waitEvents(t, nc, 1)
	if ev[0].msgID != "tx-p1" || ev[0].tp != testTP {
		t.Fatalf("event %+v", ev[0])
	}
}
