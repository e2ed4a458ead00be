package natstransport_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

func faultyCoordinator(t *testing.T, nc *nats.Conn, replies twophase.ReplyHandler, f *natstransport.Faults) *natstransport.Coordinator {
	t.Helper()
	c, err := natstransport.NewCoordinator(context.Background(), natstransport.CoordinatorConfig{Conn: nc, Replies: replies,
		Clock: testEpochClock, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); f.Wait() })
	return c
}

func TestFaultsSetPercent(t *testing.T) {
	f := natstransport.NewFaults(1)
	if err := f.SetPercent(10, 20); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]float64{{-1, 0}, {0, 100.5}, {math.NaN(), 0}, {0, math.Inf(1)}} {
		if err := f.SetPercent(bad[0], bad[1]); !errors.Is(err, natstransport.ErrBadPercent) {
			t.Errorf("SetPercent(%v) = %v, want ErrBadPercent", bad, err)
		}
	}
	if d, r := f.Percent(); d != 10 || r != 20 {
		t.Errorf("a refused SetPercent changed the shares to %v, %v", d, r)
	}
	var none *natstransport.Faults
	if d, r := none.Percent(); d != 0 || r != 0 {
		t.Error("a nil hook reports faults")
	}
	if err := none.SetPercent(1, 1); err == nil {
		t.Error("a nil hook accepted faults")
	}
	none.Wait()
}

// With every command duplicated, each reaches the shard twice (JetStream stores the
// copy under its own Nats-Msg-Id) and the participant applies it once.
func TestFaultsDuplicateCommands(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	f := natstransport.NewFaults(7)
	if err := f.SetPercent(100, 0); err != nil {
		t.Fatal(err)
	}
	coord := faultyCoordinator(t, env.connect(), sink.handle, f)
	g := newGame()
	part := newParticipant(t, "s1", g, nil)
	srv := serve(t, env.connect(), "s1", part, nil)
	const n = 10
	for i := range n {
		send(t, coord, "s1", prepare(fmt.Sprintf("tx%02d", i), "s1", players(fmt.Sprintf("p%d", i))...))
	}
	testutil.WaitFor(t, 15*time.Second, "every delivery to be handled", func() error {
		if st := srv.Stats(); st.Handled < 2*n {
			return fmt.Errorf("shard handled %d of %d deliveries: %+v", st.Handled, 2*n, st)
		}
		return nil
	})
	sink.waitVotes(t, n)
	if st := coord.Stats(); st.Stored != 2*n || st.Sent != n {
		t.Errorf("coordinator stats %+v: want %d sent, %d stored", st, n, 2*n)
	}
	for i := range n {
		if p, _, _ := g.counts(fmt.Sprintf("tx%02d", i)); p != 1 {
			t.Errorf("tx%02d prepared %d times by the game", i, p)
		}
	}
	if d := part.Stats().Duplicates; d != n {
		t.Errorf("participant saw %d duplicates, want %d", d, n)
	}
}

// With every reply duplicated, the coordinator hears each vote twice.
func TestFaultsDuplicateReplies(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	f := natstransport.NewFaults(8)
	if err := f.SetPercent(100, 0); err != nil {
		t.Fatal(err)
	}
	g := newGame()
	serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), func(c *natstransport.ParticipantConfig) { c.Faults = f })
	const n = 5
	for i := range n {
		send(t, coord, "s1", prepare(fmt.Sprintf("tx%02d", i), "s1", players(fmt.Sprintf("p%d", i))...))
	}
	testutil.WaitFor(t, 15*time.Second, "every vote", func() error {
		if v := coord.Stats().Votes; v < 2*n {
			return fmt.Errorf("%d of %d votes", v, 2*n)
		}
		return nil
	})
	sink.waitVotes(t, n)
	for i := range n {
		if p, _, _ := g.counts(fmt.Sprintf("tx%02d", i)); p != 1 {
			t.Errorf("tx%02d prepared %d times", i, p)
		}
	}
}

// With every command held back a random while, later commands overtake earlier ones
// on the wire.
func TestFaultsReorderCommands(t *testing.T) {
	env := newNatsEnv(t)
	f := natstransport.NewFaults(9)
	if err := f.SetPercent(0, 100); err != nil {
		t.Fatal(err)
	}
	coord := faultyCoordinator(t, env.connect(), newReplySink().handle, f)
	raw := env.connect()
	var mu sync.Mutex
	var order []string
	sub, err := raw.Subscribe("sm.v1.shard.s1.cmd", func(m *nats.Msg) {
		cmd := new(smv1.ShardCommand)
		if err := proto.Unmarshal(m.Data, cmd); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, cmd.GetPrepare().GetTxid())
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var sent []string
	for i := range n {
		txid := fmt.Sprintf("tx%02d", i)
		sent = append(sent, txid)
		send(t, coord, "s1", prepare(txid, "s1", players("p")...))
	}
	f.Wait()
	testutil.WaitFor(t, 10*time.Second, "every command on the wire", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(order) < n {
			return fmt.Errorf("%d of %d commands on the wire", len(order), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if slices.Equal(order, sent) {
		t.Fatalf("100%% reorder left the send order intact: %v", order)
	}
	if got := slices.Sorted(slices.Values(order)); !slices.Equal(got, sent) {
		t.Fatalf("reordering lost or duplicated commands: %v", order)
	}
}
