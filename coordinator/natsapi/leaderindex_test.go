package natsapi_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestLeaderIndexOnlyTheLeaderAnswers: on a real 3-node cluster the leader index
// request is answered by the leading node with its own commit index, by it alone,
// and by the next leader after a transfer.
func TestLeaderIndexOnlyTheLeaderAnswers(t *testing.T) {
	var c *natsapitest.Cluster
	c = natsapitest.Start(t, natsapitest.Options{API: func(id string, cfg *natsapi.Config) {
		i := int(id[1] - '1')
		cfg.AdminURL = "http://" + id + ".admin.test:8080"
		cfg.CommitIndex = func() uint64 {
			if n := c.Node(i); n != nil {
				return n.Raft().CommitIndex()
			}
			return 0
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := c.Connect()
	cl, err := natsapi.NewLeaderIndexClient(natsapi.LeaderIndexClientConfig{Conn: nc, Prefix: c.Prefix(), MaxAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	// Every answer on the subject, to see that followers stay silent.
	var answers atomic.Int64
	subj := natsapi.LeaderIndexSubject(natsutil.MustSubjects(c.Prefix()))
	check := func(leader int) {
		t.Helper()
		id, term := c.Node(leader).ID(), c.Node(leader).Raft().CurrentTerm()
		testutil.WaitFor(t, 10*time.Second, "the leader's index from "+id, func() error {
			li, err := cl.LeaderIndex(ctx)
			if err != nil {
				return err
			}
			if li.NodeID != id || li.Term != term {
				return fmt.Errorf("answered by %s term %d, leader is %s term %d", li.NodeID, li.Term, id, term)
			}
			if want := "http://" + id + ".admin.test:8080"; li.AdminURL != want {
				return fmt.Errorf("admin URL %q, the leader advertises %q", li.AdminURL, want)
			}
			if ci := c.Node(leader).Raft().CommitIndex(); li.CommitIndex == 0 || li.CommitIndex > ci {
				return fmt.Errorf("commit index %d, the leader's is %d", li.CommitIndex, ci)
			}
			return nil
		})
		inb := nc.NewInbox()
		sub, err := nc.SubscribeSync(inb)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.PublishRequest(subj, inb, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("no answer: %v", err)
		}
		answers.Add(1)
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Fatalf("a second node answered: %s", m.Data)
		}
	}
	leader := c.WaitServing(ctx)
	check(leader)
	if err := c.Node(leader).TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	var next int
	testutil.WaitFor(t, 20*time.Second, "another leader serving", func() error {
		if next = c.WaitServing(ctx); next == leader {
			return errors.New("same leader")
		}
		return nil
	})
	check(next)
}

// TestLeaderIndexClient: the answer is reused for MaxAge, failures wrap
// ErrNoLeaderIndex (nobody answers, garbage, too slow) and are reused too.
func TestLeaderIndexClient(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	cl, err := natsapi.NewLeaderIndexClient(natsapi.LeaderIndexClientConfig{Conn: nc, Timeout: 200 * time.Millisecond,
		MaxAge: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cl.LeaderIndex(ctx); !errors.Is(err, natsapi.ErrNoLeaderIndex) {
		t.Fatalf("nobody answering: %v", err)
	}
	var reply atomic.Value
	reply.Store([]byte(`{"node_id":"c1","term":3,"commit_index":100}`))
	var asked atomic.Int64
	responder := connect(t, s)
	sub, err := responder.Subscribe(natsapi.LeaderIndexSubject(natsutil.MustSubjects("")), func(m *nats.Msg) {
		asked.Add(1)
		if b := reply.Load().([]byte); b != nil {
			_ = m.Respond(b)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.LeaderIndex(ctx); !errors.Is(err, natsapi.ErrNoLeaderIndex) {
		t.Fatalf("the failure is not reused within MaxAge: %v", err)
	}
	clk.Advance(time.Second)
	li, err := cl.LeaderIndex(ctx)
	if err != nil || li != (natsapi.LeaderIndex{NodeID: "c1", Term: 3, CommitIndex: 100}) {
		t.Fatalf("answer %+v, %v", li, err)
	}
	reply.Store([]byte(`{"node_id":"c1","term":3,"commit_index":200}`))
	if li, _ := cl.LeaderIndex(ctx); li.CommitIndex != 100 || asked.Load() != 1 {
		t.Fatalf("within MaxAge: %+v after %d requests, want the reused answer after 1", li, asked.Load())
	}
	clk.Advance(time.Second)
	if li, _ := cl.LeaderIndex(ctx); li.CommitIndex != 200 {
		t.Fatalf("after MaxAge: %+v", li)
	}
	reply.Store([]byte(`not json`))
	clk.Advance(time.Second)
	if _, err := cl.LeaderIndex(ctx); !errors.Is(err, natsapi.ErrNoLeaderIndex) {
		t.Fatalf("garbage: %v", err)
	}
	reply.Store([]byte(nil)) // subscribed, never answers: the timeout bounds the call
	clk.Advance(time.Second)
	start := time.Now()
	if _, err := cl.LeaderIndex(ctx); !errors.Is(err, natsapi.ErrNoLeaderIndex) {
		t.Fatalf("silent responder: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the call took %s, bound is 200ms", d)
	}
	_ = sub.Unsubscribe()
}
