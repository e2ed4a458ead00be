package twophase

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// inmWaitFor polls cond until it holds, failing the test after 10s. It polls rather
// than sleeps a guessed time, so it is as fast as the code under test.
func inmWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// inmShard is a CommandHandler that records the txids it is sent, in order, and votes
// YES (or sends no reply when silent).
type inmShard struct {
	id     string
	silent bool
	mu     sync.Mutex
	seen   []string
}

func (s *inmShard) HandleCommand(_ context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
	p := cmd.GetPrepare()
	s.mu.Lock()
	s.seen = append(s.seen, p.GetTxid())
	s.mu.Unlock()
	if s.silent {
		return nil, nil
	}
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: p.GetTxid(), ShardId: s.id, Vote: smv1.VoteValue_VOTE_YES}}}, nil
}

func (s *inmShard) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// inmReplies collects the txids of the replies a coordinator node receives.
type inmReplies struct {
	mu   sync.Mutex
	txid []string
}

func (r *inmReplies) handle(reply *smv1.ShardReply) {
	r.mu.Lock()
	r.txid = append(r.txid, reply.GetVote().GetTxid())
	r.mu.Unlock()
}

func (r *inmReplies) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.txid...)
}

func inmPrepare(txid, shard string) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: txid, ShardId: shard}}}
}

func inmSend(t *testing.T, tr Transport, shard string, n int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%04d", prefix, i)
		ids = append(ids, id)
		if err := tr.Send(context.Background(), shard, inmPrepare(id, shard)); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func inmQuiet(t *testing.T, n *InmemNetwork) {
	t.Helper()
	inmWaitFor(t, "network to go quiet", func() bool { return n.InFlight() == 0 })
}

func TestInmemOrderAndRouting(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := NewInmemNetwork(InmemConfig{Seed: 1})
	defer n.Close()
	a, b := &inmShard{id: "a"}, &inmShard{id: "b"}
	n.AddShard("a", a)
	n.AddShard("b", b)
	var r1, r2 inmReplies
	t1, t2 := n.Coordinator("c1", r1.handle), n.Coordinator("c2", r2.handle)

	want1a := inmSend(t, t1, "a", 500, "x")
	want1b := inmSend(t, t1, "b", 500, "y")
	want2a := inmSend(t, t2, "a", 300, "z")
	inmQuiet(t, n)

	// Per link order holds; links interleave freely.
	filter := func(got []string, prefix byte) []string {
		var out []string
		for _, id := range got {
			if id[0] == prefix {
				out = append(out, id)
			}
		}
		return out
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"a from c1", filter(a.got(), 'x'), want1a},
		{"b from c1", b.got(), want1b},
		{"a from c2", filter(a.got(), 'z'), want2a},
		{"replies to c1 from a", filter(r1.got(), 'x'), want1a},
		{"replies to c1 from b", filter(r1.got(), 'y'), want1b},
		{"replies to c2", r2.got(), want2a},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %d messages out of order or missing (first %v)", c.name, len(c.got), c.got[:min(3, len(c.got))])
		}
	}
	if s := n.Stats(); s.Sent != 2600 || s.Delivered != 2600 || s.Dropped != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestInmemPartitionAndHeal(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := NewInmemNetwork(InmemConfig{Seed: 1})
	defer n.Close()
	a := &inmShard{id: "a"}
	n.AddShard("a", a)
	var r inmReplies
	tr := n.Coordinator("c1", r.handle)

	n.Partition("c1", "a")
	inmSend(t, tr, "a", 10, "p")
	inmQuiet(t, n)
	if len(a.got()) != 0 || n.Stats().Dropped != 10 {
		t.Fatalf("partition leaked: shard saw %d, stats %+v", len(a.got()), n.Stats())
	}
	n.Heal("c1", "a")
	inmSend(t, tr, "a", 10, "h")
	inmQuiet(t, n)
	if len(a.got()) != 10 || len(r.got()) != 10 {
		t.Fatalf("after heal: shard saw %d, replies %d", len(a.got()), len(r.got()))
	}

	n.Isolate("a")
	inmSend(t, tr, "a", 5, "i")
	inmQuiet(t, n)
	if len(a.got()) != 10 {
		t.Fatal("isolated shard received")
	}
	n.Heal("a", InmemAny)
	n.Partition("c1", "zz") // an unrelated cut stays harmless
	inmSend(t, tr, "a", 5, "j")
	inmQuiet(t, n)
	if len(a.got()) != 15 {
		t.Fatalf("after un-isolate: shard saw %d", len(a.got()))
	}
	n.HealAll()
	if s := n.Stats(); s.Dropped != 15 || s.Delivered != 30 {
		t.Fatalf("stats = %+v", s)
	}
}

// A partition also drops what is already in flight, and a reply can be lost on its
// own way back.
func TestInmemPartitionDropsInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := clock.NewFake(ptEpoch)
	n := NewInmemNetwork(InmemConfig{Seed: 1, Clock: clk, Faults: InmemFaults{MinDelay: time.Second, MaxDelay: time.Second}})
	defer n.Close()
	a := &inmShard{id: "a"}
	n.AddShard("a", a)
	var r inmReplies
	tr := n.Coordinator("c1", r.handle)

	inmSend(t, tr, "a", 3, "f")
	n.Partition("c1", "a")
	clk.Advance(time.Second)
	inmQuiet(t, n)
	if len(a.got()) != 0 {
		t.Fatal("message in flight crossed a partition")
	}
	n.HealAll()
	inmSend(t, tr, "a", 1, "g")
	clk.Advance(time.Second) // the command arrives; its reply now waits a second
	inmWaitFor(t, "command delivered", func() bool { return len(a.got()) == 1 })
	inmWaitFor(t, "reply timer", func() bool { return clk.Timers() == 1 })
	n.Partition("a", "c1")
	clk.Advance(time.Second)
	inmQuiet(t, n)
	if len(r.got()) != 0 || n.Stats().Dropped != 4 {
		t.Fatalf("reply crossed a partition: %v, stats %+v", r.got(), n.Stats())
	}
}

func TestInmemDuplication(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := NewInmemNetwork(InmemConfig{Seed: 1, Faults: InmemFaults{DuplicateRate: 1}})
	defer n.Close()
	a := &inmShard{id: "a"}
	n.AddShard("a", a)
	var r inmReplies
	tr := n.Coordinator("c1", r.handle)
	inmSend(t, tr, "a", 50, "d")
	inmQuiet(t, n)
	// Each command twice; each of those replies is duplicated again.
	if len(a.got()) != 100 || len(r.got()) != 200 || n.Stats().Duplicated != 150 {
		t.Fatalf("shard saw %d, replies %d, stats %+v", len(a.got()), len(r.got()), n.Stats())
	}
}

func TestInmemDropRateIsSeeded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	run := func(seed int64) (uint64, []string) {
		n := NewInmemNetwork(InmemConfig{Seed: seed, Faults: InmemFaults{DropRate: 0.3}})
		defer n.Close()
		a := &inmShard{id: "a", silent: true}
		n.AddShard("a", a)
		inmSend(t, n.Coordinator("c1", func(*smv1.ShardReply) {}), "a", 4000, "r")
		inmQuiet(t, n)
		return n.Stats().Dropped, a.got()
	}
	d1, got1 := run(42)
	d2, got2 := run(42)
	d3, _ := run(7)
	if rate := float64(d1) / 4000; rate < 0.27 || rate > 0.33 {
		t.Fatalf("drop rate %.3f, configured 0.3", rate)
	}
	if d1 != d2 || fmt.Sprint(got1) != fmt.Sprint(got2) {
		t.Fatalf("same seed, different runs: %d vs %d drops", d1, d2)
	}
	if d1 == d3 {
		t.Logf("seeds 42 and 7 dropped the same count (%d): possible, unlikely", d1)
	}
}

func TestInmemDelayReorders(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := clock.NewFake(ptEpoch)
	n := NewInmemNetwork(InmemConfig{Seed: 3, Clock: clk, Faults: InmemFaults{MinDelay: time.Millisecond, MaxDelay: 100 * time.Millisecond}})
	defer n.Close()
	a := &inmShard{id: "a", silent: true}
	n.AddShard("a", a)
	want := inmSend(t, n.Coordinator("c1", nil), "a", 200, "o")
	if len(a.got()) != 0 {
		t.Fatal("delayed messages arrived before the clock moved")
	}
	for range 100 { // one millisecond at a time, so delivery order follows the delays
		clk.Advance(time.Millisecond)
		inmWaitFor(t, "due messages", func() bool { return len(a.got()) == 200-clk.Timers() })
	}
	inmQuiet(t, n)
	got := a.got()
	if len(got) != 200 {
		t.Fatalf("delivered %d of 200", len(got))
	}
	if fmt.Sprint(got) == fmt.Sprint(want) {
		t.Fatal("random delays did not reorder anything")
	}
}

func TestInmemHookAndRemoval(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := NewInmemNetwork(InmemConfig{Seed: 1})
	defer n.Close()
	a, b := &inmShard{id: "a"}, &inmShard{id: "b"}
	n.AddShard("a", a)
	n.AddShard("b", b)
	var r inmReplies
	tr := n.Coordinator("c1", r.handle)

	n.SetHook(func(from, to string, msg proto.Message) bool {
		cmd, ok := msg.(*smv1.ShardCommand)
		return !(ok && to == "b" && cmd.GetPrepare() != nil)
	})
	inmSend(t, tr, "a", 3, "k")
	inmSend(t, tr, "b", 3, "k")
	inmQuiet(t, n)
	if len(a.got()) != 3 || len(b.got()) != 0 || len(r.got()) != 3 {
		t.Fatalf("hook: a %d, b %d, replies %d", len(a.got()), len(b.got()), len(r.got()))
	}
	n.SetHook(nil)

	n.RemoveShard("a")
	inmSend(t, tr, "a", 2, "gone")
	n.RemoveCoordinator("c1")
	inmSend(t, tr, "b", 2, "deaf")
	inmQuiet(t, n)
	if len(a.got()) != 3 || len(b.got()) != 2 || len(r.got()) != 3 {
		t.Fatalf("removal: a %d, b %d, replies %d", len(a.got()), len(b.got()), len(r.got()))
	}
	if err := n.SetFaults(InmemFaults{DropRate: 2}); err == nil {
		t.Fatal("SetFaults accepted DropRate 2")
	}
	if err := n.SetFaults(InmemFaults{MinDelay: 2, MaxDelay: 1}); err == nil {
		t.Fatal("SetFaults accepted MaxDelay < MinDelay")
	}
}

func TestInmemCloseLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := clock.NewFake(ptEpoch)
	n := NewInmemNetwork(InmemConfig{Seed: 1, Clock: clk, Faults: InmemFaults{MaxDelay: time.Hour}})
	block := make(chan struct{})
	n.AddShard("a", inmBlocking(block))
	tr := n.Coordinator("c1", nil)
	inmSend(t, tr, "a", 20, "w") // timers pending, never fired
	_ = n.SetFaults(InmemFaults{})
	inmSend(t, tr, "a", 2, "v") // one stuck in the handler, one queued
	inmWaitFor(t, "a command stuck in the handler", func() bool { return n.Stats().Delivered == 1 })
	if err := n.Close(); err != nil { // cancels the handler's context, so it returns
		t.Fatal(err)
	}
	close(block)
	if err := tr.Send(context.Background(), "a", inmPrepare("late", "a")); !errors.Is(err, ErrNetworkClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n2 := NewInmemNetwork(InmemConfig{})
	defer n2.Close()
	if err := n2.Coordinator("x", nil).Send(ctx, "a", inmPrepare("t", "a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context = %v", err)
	}
}

// inmBlocking blocks every command until its context ends or release closes.
type inmBlocking chan struct{}

func (b inmBlocking) HandleCommand(ctx context.Context, _ *smv1.ShardCommand) (*smv1.ShardReply, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b:
		return nil, nil
	}
}

// TestInmemParticipantsUnderFaults runs prepare/commit rounds for real participants
// over a lossy, duplicating, reordering network, resending as the driver does, and
// checks that every game effect happened exactly once.
func TestInmemParticipantsUnderFaults(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := NewInmemNetwork(InmemConfig{Seed: 9, Faults: InmemFaults{DropRate: 0.2, DuplicateRate: 0.2, MaxDelay: time.Millisecond}})
	defer n.Close()
	shards := map[string]*ptHandler{}
	for _, id := range []string{"s1", "s2"} {
		h := newPtHandler()
		p, err := NewParticipant(ParticipantConfig{ShardID: id, Handler: h, Journal: NewMemJournal(), Clock: clock.NewReal()})
		if err != nil {
			t.Fatal(err)
		}
		shards[id] = h
		n.AddShard(id, p)
	}
	replies := make(chan *smv1.ShardReply, 1024)
	tr := n.Coordinator("c1", func(r *smv1.ShardReply) {
		select {
		case replies <- r:
		default: // a reply handler must not block; a lost reply is resent for
		}
	})

	// untilReply resends cmd(shard) to every shard every 2ms until each answered.
	// A late vote may arrive during the commit phase, so only acks count there.
	untilReply := func(cmd func(shard string) *smv1.ShardCommand, txid string) {
		wantAck := cmd("s1").GetCommit() != nil
		pending := map[string]bool{"s1": true, "s2": true}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for len(pending) > 0 {
			for s := range pending {
				_ = tr.Send(context.Background(), s, cmd(s))
			}
			for drained := false; !drained && len(pending) > 0; {
				select {
				case r := <-replies:
					if v := r.GetVote(); !wantAck && v.GetTxid() == txid {
						delete(pending, v.GetShardId())
					}
					if a := r.GetAck(); wantAck && a.GetTxid() == txid {
						delete(pending, a.GetShardId())
					}
				case <-tick.C:
					drained = true
				}
			}
		}
	}
	const rounds = 30
	for i := range rounds {
		txid := fmt.Sprintf("tx%02d", i)
		untilReply(func(s string) *smv1.ShardCommand {
			return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: txid, ShardId: s,
				Players: []*smv1.ShardPlayer{{PlayerId: s + "-player", FencingToken: uint64(i + 1)}}}}}
		}, txid)
		untilReply(func(s string) *smv1.ShardCommand {
			return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: txid, ShardId: s}}}
		}, txid)
	}
	inmQuiet(t, n)
	for id, h := range shards {
		for i := range rounds {
			if got := h.calls(fmt.Sprintf("tx%02d", i)); got != "p1 c1 a0" {
				t.Fatalf("%s tx%02d: handler calls %s", id, i, got)
			}
		}
	}
	if s := n.Stats(); s.Dropped == 0 || s.Duplicated == 0 {
		t.Fatalf("faults did not happen: %+v", s)
	}
}
