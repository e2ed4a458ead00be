package natstransport_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

const testTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// natsEnv is an embedded NATS server with JetStream on a temp dir, restartable on the
// same dir and port.
type natsEnv struct {
	tb testing.TB
	*natstest.Restartable
}

func newNatsEnv(tb testing.TB) *natsEnv {
	tb.Helper()
	return &natsEnv{tb: tb, Restartable: natstest.StartRestartable(tb)}
}

// connect opens a connection that reconnects forever; it is closed at cleanup.
func (e *natsEnv) connect() *nats.Conn {
	e.tb.Helper()
	nc, err := nats.Connect(e.Server().ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0))
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(nc.Close)
	return nc
}

func (e *natsEnv) js(nc *nats.Conn) jetstream.JetStream {
	e.tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		e.tb.Fatal(err)
	}
	return js
}

// replySink collects what a Coordinator hands to its ReplyHandler.
type replySink struct {
	mu    sync.Mutex
	votes map[string]*smv1.Vote // key txid/shard
	acks  map[string]*smv1.Ack
	n     int
}

func newReplySink() *replySink {
	return &replySink{votes: map[string]*smv1.Vote{}, acks: map[string]*smv1.Ack{}}
}

func (r *replySink) handle(reply *smv1.ShardReply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if v := reply.GetVote(); v != nil {
		r.votes[v.GetTxid()+"/"+v.GetShardId()] = v
	}
	if a := reply.GetAck(); a != nil {
		r.acks[a.GetTxid()+"/"+a.GetShardId()] = a
	}
}

func (r *replySink) counts() (votes, acks, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.votes), len(r.acks), r.n
}

func (r *replySink) vote(txid, shard string) *smv1.Vote {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.votes[txid+"/"+shard]
}

func (r *replySink) ack(txid, shard string) *smv1.Ack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[txid+"/"+shard]
}

func (r *replySink) waitVotes(tb testing.TB, n int) {
	tb.Helper()
	testutil.WaitFor(tb, 15*time.Second, "votes", func() error {
		if v, _, _ := r.counts(); v < n {
			return fmt.Errorf("%d of %d votes", v, n)
		}
		return nil
	})
}

func (r *replySink) waitAcks(tb testing.TB, n int) {
	tb.Helper()
	testutil.WaitFor(tb, 15*time.Second, "acks", func() error {
		if _, a, _ := r.counts(); a < n {
			return fmt.Errorf("%d of %d acks", a, n)
		}
		return nil
	})
}

// testEpochClock is the clock of every test Coordinator's resend epochs: it never
// moves unless a test advances it, so resends dedupe deterministically.
var testEpochClock = clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

func newCoordinator(tb testing.TB, nc *nats.Conn, replies twophase.ReplyHandler) *natstransport.Coordinator {
	tb.Helper()
	c, err := natstransport.NewCoordinator(context.Background(), natstransport.CoordinatorConfig{Conn: nc, Replies: replies, Clock: testEpochClock})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// game is a ShardHandler counting its calls per txid; it fails Commit while failCommit
// is positive (and decrements it).
type game struct {
	mu                        sync.Mutex
	prepares, commits, aborts map[string]int
	failCommit                int
	commitWaiting             int           // Commit calls in progress
	prepareGate, commitGate   chan struct{} // if set, Prepare / Commit wait for them
}

func newGame() *game {
	return &game{prepares: map[string]int{}, commits: map[string]int{}, aborts: map[string]int{}}
}

func (g *game) Prepare(ctx context.Context, txid string, _ []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	g.mu.Lock()
	g.prepares[txid]++
	gate := g.prepareGate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	return nil, nil
}

func (g *game) Commit(ctx context.Context, txid string, _ []*smv1.ShardPlayer) error {
	g.mu.Lock()
	gate := g.commitGate
	g.commitWaiting++
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.commitWaiting--
	if g.failCommit > 0 {
		g.failCommit--
		return fmt.Errorf("game server busy")
	}
	g.commits[txid]++
	return nil
}

func (g *game) Abort(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.aborts[txid]++
	return nil
}

func (g *game) counts(txid string) (p, c, a int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.prepares[txid], g.commits[txid], g.aborts[txid]
}

func (g *game) committed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.commits))
}

func newParticipant(tb testing.TB, shard string, g *game, j twophase.Journal) *twophase.Participant {
	tb.Helper()
	if j == nil {
		j = twophase.NewMemJournal()
	}
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: shard, Handler: g, Journal: j, Clock: clock.NewReal()})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func serve(tb testing.TB, nc *nats.Conn, shard string, h twophase.CommandHandler, mod func(*natstransport.ParticipantConfig)) *natstransport.ShardServer {
	tb.Helper()
	cfg := natstransport.ParticipantConfig{Conn: nc, ShardID: shard, Handler: h, AckWait: 2 * time.Second, NakDelay: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := natstransport.Serve(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func players(ids ...string) []*smv1.ShardPlayer {
	out := make([]*smv1.ShardPlayer, len(ids))
	for i, id := range ids {
		out[i] = &smv1.ShardPlayer{PlayerId: id, FencingToken: uint64(i + 1)}
	}
	return out
}

func prepare(txid, shard string, pl ...*smv1.ShardPlayer) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: txid, ShardId: shard, Players: pl, Term: 3}}}
}

func commit(txid, shard string) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: txid, ShardId: shard, Term: 3}}}
}

func abort(txid, shard string) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{Txid: txid, ShardId: shard, Term: 3}}}
}

func send(tb testing.TB, c *natstransport.Coordinator, shard string, cmd *smv1.ShardCommand) {
	tb.Helper()
	if err := c.Send(natsutil.WithTraceParent(context.Background(), testTP), shard, cmd); err != nil {
		tb.Fatal(err)
	}
}

// waitStored waits until JetStream has confirmed n commands (stored or deduplicated).
func waitStored(tb testing.TB, c *natstransport.Coordinator, n uint64) {
	tb.Helper()
	testutil.WaitFor(tb, 10*time.Second, "the commands to be confirmed", func() error {
		if s := c.Stats(); s.Stored+s.Deduplicated < n {
			return fmt.Errorf("%d of %d confirmed: %+v", s.Stored+s.Deduplicated, n, s)
		}
		return nil
	})
}

// consumerInfo returns the durable consumer of shard.
func consumerInfo(tb testing.TB, js jetstream.JetStream, shard string) *jetstream.ConsumerInfo {
	tb.Helper()
	c, err := js.Consumer(context.Background(), "SM_CMD", natstransport.ConsumerName(shard))
	if err != nil {
		tb.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

func (g *game) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.commitWaiting
}
