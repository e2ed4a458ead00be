package natstransport_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// crashAfter closes the shard's connection right after the handler returns for one
// txid and phase: the effect is journaled, but neither the reply nor the JetStream ack
// ever leaves, as when the process is killed at that instant.
type crashAfter struct {
	next         twophase.CommandHandler
	txid, phase  string
	conn         *nats.Conn
	crashedAfter chan struct{}
}

func (c *crashAfter) HandleCommand(ctx context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
	reply, err := c.next.HandleCommand(ctx, cmd)
	if txid, phase := phaseOf(cmd); txid == c.txid && phase == c.phase {
		c.conn.Close()
		close(c.crashedAfter)
	}
	return reply, err
}

func waitClosed(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s: not within 10s", what)
	}
}

// A shard killed after voting YES (and one killed after journaling a Commit but before
// acking it) restarts on its journal and durable consumer, receives what it missed,
// and applies every Commit exactly once.
func TestShardRestartAfterYes(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	path := filepath.Join(t.TempDir(), "s1.journal")

	j1, err := twophase.OpenBoltJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	g1 := newGame()
	nc1 := env.connect()
	crash := &crashAfter{next: newParticipant(t, "s1", g1, j1), txid: "tx2", phase: "commit", conn: nc1, crashedAfter: make(chan struct{})}
	srv1 := serve(t, nc1, "s1", crash, nil)

	send(t, coord, "s1", prepare("tx1", "s1", players("alice")...))
	send(t, coord, "s1", prepare("tx2", "s1", players("bob")...))
	sink.waitVotes(t, 2)
	send(t, coord, "s1", commit("tx2", "s1"))
	waitClosed(t, crash.crashedAfter, "crash after commit tx2")
	waitClosed(t, srv1.Done(), "server stopping with its connection")
	if _, c, _ := g1.counts("tx2"); c != 1 {
		t.Fatalf("tx2 committed %d times before the crash", c)
	}
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	// While the shard is down, tx1's Commit is published and stored.
	send(t, coord, "s1", commit("tx1", "s1"))
	waitStored(t, coord, 4)

	j2, err := twophase.OpenBoltJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	g2 := newGame()
	p2 := newParticipant(t, "s1", g2, j2)
	if got := fmt.Sprint(p2.InDoubt()); got != "[tx1]" {
		t.Fatalf("in doubt after restart = %s", got)
	}
	srv2 := serve(t, env.connect(), "s1", p2, nil)
	// tx1's Commit was waiting in the consumer; tx2's is redelivered after AckWait.
	sink.waitAcks(t, 2)
	for _, txid := range []string{"tx1", "tx2"} {
		if a := sink.ack(txid, "s1"); a.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Errorf("ack %s = %v", txid, a)
		}
	}
	_, c1, _ := g2.counts("tx1")
	_, c2, _ := g2.counts("tx2")
	if c1 != 1 || c2 != 0 {
		t.Errorf("after restart: tx1 committed %d times (want 1), tx2 %d more times (want 0)", c1, c2)
	}
	if s := p2.Stats(); len(p2.InDoubt()) != 0 || s.Duplicates != 1 || s.Anomalies != 0 || s.Commits != 1 {
		t.Errorf("participant after restart: in doubt %v, stats %+v", p2.InDoubt(), s)
	}
	if s := srv2.Stats(); s.Redelivered < 1 || s.Handled != 2 {
		t.Errorf("server stats = %+v", s)
	}
}

// Commands JetStream confirmed survive a NATS restart (the file store survives),
// whether the shard was not consuming yet or was consuming through the restart.
func TestNATSRestartLosesNothingAcknowledged(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coordConn := env.connect()
	coord := newCoordinator(t, coordConn, sink.handle)
	const n = 50
	txid := func(i int) string { return fmt.Sprintf("tx%02d", i) }

	// 1. Published and confirmed while no shard consumes; then NATS restarts.
	for i := range n {
		send(t, coord, "s1", prepare(txid(i), "s1", players("p"+txid(i))...))
	}
	waitStored(t, coord, n)
	env.Restart()
	// The coordinator's connection comes back with its subscriptions before the shard
	// starts, so no vote is published into a void.
	testutil.WaitFor(t, 10*time.Second, "the coordinator's connection after the restart", func() error {
		if !coordConn.IsConnected() {
			return fmt.Errorf("coordinator connection %v", coordConn.Status())
		}
		return coordConn.FlushTimeout(time.Second)
	})
	g := newGame()
	part := newParticipant(t, "s1", g, nil)
	srv := serve(t, env.connect(), "s1", part, nil)
	sink.waitVotes(t, n)

	// 2. Mid-load: Commits confirmed and delivered, some in the handler, the rest
	// queued behind them, when NATS restarts; the handlers finish after it.
	gate := make(chan struct{})
	g.mu.Lock()
	g.commitGate = gate
	g.mu.Unlock()
	for i := range n {
		send(t, coord, "s1", commit(txid(i), "s1"))
	}
	waitStored(t, coord, 2*n)
	testutil.WaitFor(t, 10*time.Second, "two commits in the handler", func() error {
		if w := g.waiting(); w < 2 {
			return fmt.Errorf("%d commits in the handler", w)
		}
		return nil
	})
	env.Restart()
	close(gate)
	testutil.WaitFor(t, 20*time.Second, "every commit", func() error {
		if got := len(g.committed()); got != n {
			return fmt.Errorf("%d of %d committed; server %+v", got, n, srv.Stats())
		}
		return nil
	})
	for i := range n {
		if p, c, _ := g.counts(txid(i)); p != 1 || c != 1 {
			t.Errorf("%s: %d prepares, %d commits", txid(i), p, c)
		}
	}
	if s := part.Stats(); s.Anomalies != 0 || s.Commits != n {
		t.Errorf("participant stats = %+v", s)
	}

	// 3. The shard's consumer carries on over its reconnected connection.
	testutil.WaitFor(t, 10*time.Second, "the coordinator's connection after the restart", func() error {
		if !coordConn.IsConnected() {
			return fmt.Errorf("coordinator connection %v", coordConn.Status())
		}
		return coordConn.FlushTimeout(time.Second)
	})
	for i := n; i < n+10; i++ {
		send(t, coord, "s1", prepare(txid(i), "s1", players("p"+txid(i))...))
	}
	sink.waitVotes(t, n+10)
	t.Logf("server stats after two NATS restarts: %+v", srv.Stats())
}
