package natstransport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// A transient handler error is nak'd and redelivered with backoff until it succeeds.
func TestHandlerErrorIsRedelivered(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	g := newGame()
	g.failCommit = 2
	srv := serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), nil)

	send(t, coord, "s1", prepare("tx1", "s1", players("a")...))
	sink.waitVotes(t, 1)
	send(t, coord, "s1", commit("tx1", "s1"))
	sink.waitAcks(t, 1)
	if _, c, _ := g.counts("tx1"); c != 1 {
		t.Errorf("tx1 committed %d times", c)
	}
	if s := srv.Stats(); s.HandlerErrors != 2 || s.Redelivered != 2 || s.Handled != 2 {
		t.Errorf("server stats = %+v", s)
	}
}

// Drain finishes the commands this process holds, answers and acks them, then stops
// taking commands; the rest wait in the stream for the next server.
func TestDrainFinishesInFlight(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	g := newGame()
	g.prepareGate = make(chan struct{})
	srv := serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), nil)
	js := env.js(env.connect())

	const n = 5
	for i := range n {
		send(t, coord, "s1", prepare(fmt.Sprint("tx", i), "s1", players(fmt.Sprint("p", i))...))
	}
	testutil.WaitFor(t, 10*time.Second, "every command to be received", func() error {
		if r := srv.Stats().Received; r != n {
			return fmt.Errorf("%d of %d received", r, n)
		}
		return nil
	})
	drained := make(chan error, 1)
	go func() { drained <- srv.Drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with handlers held", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.prepareGate)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	waitClosed(t, srv.Done(), "Done after Drain")
	sink.waitVotes(t, n)
	if s := srv.Stats(); s.Handled != n || s.Votes != n {
		t.Errorf("server stats = %+v", s)
	}
	// Nothing is consumed any more: a new command waits in the stream.
	send(t, coord, "s1", prepare("late", "s1", players("q")...))
	waitStored(t, coord, n+1)
	testutil.WaitFor(t, 5*time.Second, "the consumer to hold one pending command", func() error {
		if info := consumerInfo(t, js, "s1"); info.NumPending != 1 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d ack pending", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if err := srv.Drain(context.Background()); err != nil {
		t.Errorf("second Drain = %v", err)
	}
}

// A Drain whose context ends cancels the handlers and reports the context's error.
func TestDrainDeadline(t *testing.T) {
	env := newNatsEnv(t)
	coord := newCoordinator(t, env.connect(), func(*smv1.ShardReply) {})
	g := newGame()
	g.prepareGate = make(chan struct{}) // never opened: only cancellation frees it
	srv := serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), nil)
	send(t, coord, "s1", prepare("tx1", "s1", players("a")...))
	testutil.WaitFor(t, 10*time.Second, "the prepare to start", func() error {
		if p, _, _ := g.counts("tx1"); p != 1 {
			return errors.New("prepare not started")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	waitClosed(t, srv.Done(), "Done after Drain")
}

// querier answers outcomes from a map; a missing txid is an error.
type querier struct {
	mu sync.Mutex
	m  map[string]smv1.Outcome
}

func (q *querier) Outcome(_ context.Context, txid string) (smv1.Outcome, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	o, ok := q.m[txid]
	if !ok {
		return 0, errors.New("coordinator unreachable")
	}
	return o, nil
}

func (q *querier) set(txid string, o smv1.Outcome) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.m[txid] = o
}

// With a Querier, a restarted shard settles its in-doubt txids by outcome queries and
// stays in doubt while the answer is PENDING or unavailable.
func TestRecoverInDoubtOnStart(t *testing.T) {
	env := newNatsEnv(t)
	newCoordinator(t, env.connect(), func(*smv1.ShardReply) {})
	j := twophase.NewMemJournal()
	p1 := newParticipant(t, "s1", newGame(), j)
	for _, txid := range []string{"tx1", "tx2", "tx3"} {
		if _, err := p1.HandleCommand(context.Background(), prepare(txid, "s1", players("p"+txid)...)); err != nil {
			t.Fatal(err)
		}
	}
	g := newGame()
	p2 := newParticipant(t, "s1", g, j) // the restarted process
	q := &querier{m: map[string]smv1.Outcome{"tx1": smv1.Outcome_OUTCOME_COMMITTED, "tx2": smv1.Outcome_OUTCOME_PENDING}}
	serve(t, env.connect(), "s1", p2, func(c *natstransport.ParticipantConfig) {
		c.Querier, c.RecoverInterval, c.RecoverIntervalMax = q, 5*time.Millisecond, 20*time.Millisecond
	})
	testutil.WaitFor(t, 10*time.Second, "tx2 and tx3 in doubt", func() error {
		if got := fmt.Sprint(p2.InDoubt()); got != "[tx2 tx3]" {
			return fmt.Errorf("in doubt %s", got)
		}
		return nil
	})
	q.set("tx2", smv1.Outcome_OUTCOME_ABORTED)
	q.set("tx3", smv1.Outcome_OUTCOME_COMMITTED)
	testutil.WaitFor(t, 10*time.Second, "nothing in doubt", func() error {
		if d := p2.InDoubt(); len(d) != 0 {
			return fmt.Errorf("in doubt %v", d)
		}
		return nil
	})
	_, c1, _ := g.counts("tx1")
	_, _, a2 := g.counts("tx2")
	_, c3, _ := g.counts("tx3")
	if c1 != 1 || a2 != 1 || c3 != 1 {
		t.Errorf("recovery effects: tx1 commits %d, tx2 aborts %d, tx3 commits %d", c1, a2, c3)
	}
}
