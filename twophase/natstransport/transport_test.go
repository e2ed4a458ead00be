package natstransport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// Every connection, subscription, worker and embedded server must be gone when a test
// ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Prepare and Commit for many txids on two shards, sent concurrently: every vote and
// ack arrives, every effect happens once, and the trace context travels end to end.
func TestRoundTrip(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)

	// A raw listener checks that replies carry the command's traceparent.
	tpSeen := make(chan string, 1)
	raw := env.connect()
	sub, err := raw.Subscribe("sm.v1.coord.vote.s1", func(m *nats.Msg) {
		tp, _ := natsutil.TraceParent(m.Header)
		select {
		case tpSeen <- tp:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}

	shards := []string{"s1", "s2"}
	games := map[string]*game{}
	for _, s := range shards {
		games[s] = newGame()
		serve(t, env.connect(), s, newParticipant(t, s, games[s], nil), nil)
	}
	const txns = 40
	var wg sync.WaitGroup
	for i := range txns {
		wg.Go(func() {
			for _, s := range shards {
				send(t, coord, s, prepare(fmt.Sprintf("tx%03d", i), s, players(fmt.Sprintf("p%d-%s", i, s))...))
			}
		})
	}
	wg.Wait()
	sink.waitVotes(t, txns*len(shards))
	for i := range txns {
		wg.Go(func() {
			for _, s := range shards {
				send(t, coord, s, commit(fmt.Sprintf("tx%03d", i), s))
			}
		})
	}
	wg.Wait()
	sink.waitAcks(t, txns*len(shards))

	for i := range txns {
		txid := fmt.Sprintf("tx%03d", i)
		for _, s := range shards {
			if v := sink.vote(txid, s); v.GetVote() != smv1.VoteValue_VOTE_YES || v.GetTerm() != 3 {
				t.Errorf("vote %s/%s = %v", txid, s, v)
			}
			if a := sink.ack(txid, s); a.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
				t.Errorf("ack %s/%s = %v", txid, s, a)
			}
			if p, c, a := games[s].counts(txid); p != 1 || c != 1 || a != 0 {
				t.Errorf("%s on %s: %d prepares, %d commits, %d aborts", txid, s, p, c, a)
			}
		}
	}
	select {
	case tp := <-tpSeen:
		if tp != testTP {
			t.Errorf("vote traceparent = %q", tp)
		}
	case <-time.After(5 * time.Second):
		t.Error("no vote seen by the raw listener")
	}

	// A resend inside the dedupe window is confirmed but not stored again, so the
	// shard does not see it (its durable consumer delivered the first copy).
	send(t, coord, "s1", commit("tx000", "s1"))
	testutil.WaitFor(t, 5*time.Second, "the duplicate to be deduplicated", func() error {
		if d := coord.Stats().Deduplicated; d != 1 {
			return fmt.Errorf("deduplicated = %d", d)
		}
		return nil
	})
	if st := coord.Stats(); st.Sent != 4*txns+1 || st.Stored != 4*txns || st.Votes != 2*txns || st.Acks != 2*txns ||
		st.Malformed+st.ShardMismatch+st.SendErrors+st.PubAckErrors != 0 {
		t.Errorf("coordinator stats = %+v", st)
	}
}

// probe wraps a CommandHandler and records, per txid, overlapping calls and the order
// of phases, and across txids the highest concurrency.
type probe struct {
	next twophase.CommandHandler

	mu        sync.Mutex
	active    map[string]int
	total     int
	maxTxid   int
	maxAll    int
	phases    map[string][]string
	traces    map[string]string
	parallel  chan struct{} // closed once two txids were in flight together
	parallelO sync.Once
}

func newProbe(next twophase.CommandHandler) *probe {
	return &probe{next: next, active: map[string]int{}, phases: map[string][]string{}, traces: map[string]string{},
		parallel: make(chan struct{})}
}

func phaseOf(cmd *smv1.ShardCommand) (txid, phase string) {
	switch {
	case cmd.GetPrepare() != nil:
		return cmd.GetPrepare().GetTxid(), "prepare"
	case cmd.GetCommit() != nil:
		return cmd.GetCommit().GetTxid(), "commit"
	}
	return cmd.GetAbort().GetTxid(), "abort"
}

func (p *probe) HandleCommand(ctx context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
	txid, phase := phaseOf(cmd)
	tp, _ := natsutil.TraceParentFrom(ctx)
	p.mu.Lock()
	p.active[txid]++
	p.total++
	p.maxTxid = max(p.maxTxid, p.active[txid])
	p.maxAll = max(p.maxAll, p.total)
	p.phases[txid] = append(p.phases[txid], phase)
	p.traces[txid] = tp
	if p.total >= 2 {
		p.parallelO.Do(func() { close(p.parallel) })
	}
	p.mu.Unlock()
	if phase == "prepare" {
		// Hold the first prepares until another txid is in flight too, so a transport
		// that serialised everything would show, and one that overlapped a txid's
		// commands would get the chance to.
		select {
		case <-p.parallel:
		case <-time.After(2 * time.Second):
		}
	}
	defer func() {
		p.mu.Lock()
		p.active[txid]--
		p.total--
		p.mu.Unlock()
	}()
	return p.next.HandleCommand(ctx, cmd)
}

// One txid's commands never overlap and keep stream order; different txids overlap.
// With batches on, the commands sent in a burst travel several to a message and the
// same holds, each command's trace context still reaching its handler.
func TestPerTxnOrderingWithParallelism(t *testing.T) {
	for _, batches := range []bool{false, true} {
		t.Run(fmt.Sprintf("batches=%v", batches), func(t *testing.T) { testPerTxnOrdering(t, batches) })
	}
}

func testPerTxnOrdering(t *testing.T, batches bool) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	if batches {
		coord.SetBatches(always)
	}
	g := newGame()
	part := newParticipant(t, "s1", g, nil)
	pr := newProbe(part)
	srv := serve(t, env.connect(), "s1", pr, func(c *natstransport.ParticipantConfig) { c.Workers = 8 })

	const txns = 64
	for i := range txns {
		txid := fmt.Sprintf("tx%02d", i)
		// Prepare and Commit back to back: only stream order per txid keeps the
		// Commit from overtaking its Prepare (which the participant would report as
		// an anomaly: a commit without a YES on record).
		send(t, coord, "s1", prepare(txid, "s1", players("p"+txid)...))
		send(t, coord, "s1", commit(txid, "s1"))
	}
	sink.waitAcks(t, txns)

	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.maxTxid != 1 {
		t.Errorf("one txid had %d commands in flight at once", pr.maxTxid)
	}
	if pr.maxAll < 2 {
		t.Errorf("at most %d commands in flight across txids: no parallelism", pr.maxAll)
	}
	for i := range txns {
		txid := fmt.Sprintf("tx%02d", i)
		if got := fmt.Sprint(pr.phases[txid]); got != "[prepare commit]" {
			t.Errorf("%s handled as %s", txid, got)
		}
		if pr.traces[txid] != testTP {
			t.Errorf("%s handler context traceparent = %q", txid, pr.traces[txid])
		}
		if _, c, _ := g.counts(txid); c != 1 {
			t.Errorf("%s committed %d times", txid, c)
		}
	}
	if s := part.Stats(); s.Anomalies != 0 || s.Commits != txns {
		t.Errorf("participant stats = %+v", s)
	}
	cs, ss := coord.Stats(), srv.Stats()
	if ss.Handled != 2*txns || ss.Votes != txns || ss.Acks != txns || cs.Sent != 2*txns {
		t.Errorf("coordinator stats %+v, server stats %+v: want %d sent and handled, %d votes and acks", cs, ss, 2*txns, txns)
	}
	if (cs.Messages == cs.Sent) == batches || cs.Messages == 0 {
		t.Errorf("coordinator stats %+v: %d messages for %d commands (batches %v)", cs, cs.Messages, cs.Sent, batches)
	}
	if batched := cs.Batches > 0 && cs.BatchReplies > 0 && ss.Batches > 0; batched != batches {
		t.Errorf("coordinator stats %+v, server stats %+v: batches seen %v, want %v", cs, ss, batched, batches)
	}
}

func TestSendValidates(t *testing.T) {
	env := newNatsEnv(t)
	coord := newCoordinator(t, env.connect(), func(*smv1.ShardReply) {})
	ctx := context.Background()
	cases := []struct {
		shard string
		cmd   *smv1.ShardCommand
		want  error
	}{
		{"s1", nil, twophase.ErrMalformedCommand},
		{"s1", &smv1.ShardCommand{}, twophase.ErrMalformedCommand},
		{"s1", prepare("", "s1"), twophase.ErrMalformedCommand},
		{"s1", prepare("tx", "s2"), natstransport.ErrShardMismatch},
		{"a.b", prepare("tx", "a.b"), natsutil.ErrInvalidToken},
		{"*", commit("tx", "*"), natsutil.ErrInvalidToken},
	}
	for _, c := range cases {
		if err := coord.Send(ctx, c.shard, c.cmd); !errors.Is(err, c.want) {
			t.Errorf("Send(%q, %v) = %v, want %v", c.shard, c.cmd, err, c.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := coord.Send(cctx, "s1", prepare("tx", "s1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Send(cancelled) = %v", err)
	}
	if err := coord.Close(); err != nil {
		t.Fatal(err)
	}
	if err := coord.Send(ctx, "s1", prepare("tx", "s1")); !errors.Is(err, natstransport.ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	if s := coord.Stats(); s.SendErrors != uint64(len(cases))+2 || s.Sent != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestConfigValidation(t *testing.T) {
	env := newNatsEnv(t)
	nc := env.connect()
	ctx := context.Background()
	if _, err := natstransport.NewCoordinator(ctx, natstransport.CoordinatorConfig{Conn: nc}); err == nil {
		t.Error("coordinator without Replies accepted")
	}
	if _, err := natstransport.NewCoordinator(ctx, natstransport.CoordinatorConfig{Replies: func(*smv1.ShardReply) {}}); err == nil {
		t.Error("coordinator without Conn accepted")
	}
	h := newParticipant(t, "s1", newGame(), nil)
	// No stream yet: the coordinator creates it.
	if _, err := natstransport.Serve(ctx, natstransport.ParticipantConfig{Conn: nc, ShardID: "s1", Handler: h}); err == nil {
		t.Error("Serve without the command stream succeeded")
	}
	newCoordinator(t, nc, func(*smv1.ShardReply) {})
	for _, bad := range []natstransport.ParticipantConfig{
		{Conn: nc, ShardID: "s1"},
		{ShardID: "s1", Handler: h},
		{Conn: nc, ShardID: "s.1", Handler: h},
		{Conn: nc, ShardID: "s1", Handler: h, MaxAckPending: 1},
		{Conn: nc, ShardID: "s1", Handler: h, Workers: -1},
		// A wrapper around the Participant is no Recoverer: recovery would silently
		// never run, so Serve refuses until Recoverer names the Participant.
		{Conn: nc, ShardID: "s1", Handler: wrapped{h}, Querier: noQuerier{}},
	} {
		if _, err := natstransport.Serve(ctx, bad); err == nil {
			t.Errorf("Serve(%+v) succeeded", bad)
		}
	}
	srv, err := natstransport.Serve(ctx, natstransport.ParticipantConfig{Conn: nc, ShardID: "s1", Handler: wrapped{h},
		Querier: noQuerier{}, Recoverer: h})
	if err != nil {
		t.Fatalf("a wrapper with an explicit Recoverer: %v", err)
	}
	_ = srv.Close()
}

// wrapped is a CommandHandler around another, as a game's middleware would be.
type wrapped struct{ twophase.CommandHandler }

// noQuerier knows no outcome.
type noQuerier struct{}

func (noQuerier) Outcome(context.Context, string) (smv1.Outcome, error) {
	return smv1.Outcome_OUTCOME_PENDING, nil
}

// A vote lost on core NATS is not the end: the driver's resend in a later epoch is
// stored again, the shard answers the duplicate with the same vote, and its game sees
// one prepare.
func TestResendInLaterEpochRecoversLostReply(t *testing.T) {
	env := newNatsEnv(t)
	var mu sync.Mutex
	var votes int
	lost := true
	coord := newCoordinator(t, env.connect(), func(r *smv1.ShardReply) {
		mu.Lock()
		defer mu.Unlock()
		if r.GetVote() == nil {
			return
		}
		if lost { // the first vote never arrives
			lost = false
			return
		}
		votes++
	})
	g := newGame()
	serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), nil)
	send(t, coord, "s1", prepare("txlost", "s1", players("a")...))
	testutil.WaitFor(t, 10*time.Second, "the prepare", func() error {
		if p, _, _ := g.counts("txlost"); p != 1 {
			return fmt.Errorf("%d prepares", p)
		}
		return nil
	})
	send(t, coord, "s1", prepare("txlost", "s1", players("a")...)) // same epoch: deduped
	testutil.WaitFor(t, 5*time.Second, "the resent prepare to be deduplicated", func() error {
		if d := coord.Stats().Deduplicated; d < 1 {
			return fmt.Errorf("deduplicated = %d", d)
		}
		return nil
	})
	testEpochClock.Advance(natstransport.DefaultResendEpoch)
	send(t, coord, "s1", prepare("txlost", "s1", players("a")...)) // next epoch: stored
	testutil.WaitFor(t, 10*time.Second, "the vote after the resend", func() error {
		mu.Lock()
		defer mu.Unlock()
		if votes != 1 {
			return fmt.Errorf("%d votes after the resend", votes)
		}
		return nil
	})
	if p, _, _ := g.counts("txlost"); p != 1 {
		t.Fatalf("game saw %d prepares, want 1 (the resend is a duplicate)", p)
	}
}
