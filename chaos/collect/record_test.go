package collect

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

type leaseSlice []history.LeaseEvent

func (l *leaseSlice) Lease(ev history.LeaseEvent) { *l = append(*l, ev) }

type shardSlice []history.ShardEvent

func (s *shardSlice) Shard(ev history.ShardEvent) { *s = append(*s, ev) }

func TestObserverMapping(t *testing.T) {
	var got leaseSlice
	obs := Observer("c2", &got)
	ls := []lease.Lease{{Player: "a", TxID: "t1", Token: 4, TTL: time.Minute, RenewSeq: 2}, {Player: "b", TxID: "t1", Token: 4, TTL: time.Minute, RenewSeq: 2}}
	for _, ev := range []coordinator.Event{
		{Kind: coordinator.EventRestored},
		{Index: 4, Kind: coordinator.EventLeaseGranted, TxID: "t1", Leases: ls},
		{Index: 5, Kind: coordinator.EventDecided, TxID: "t1"}, // not a lease change
		{Index: 5, Kind: coordinator.EventLeaseActivated, TxID: "t1", Leases: ls},
		{Index: 6, Kind: coordinator.EventLeaseRenewed, TxID: "t1", Leases: ls},
		{Index: 7, Kind: coordinator.EventLeaseReleased, TxID: "t1"},
		{Index: 8, Kind: coordinator.EventLeaseExpired, TxID: "t9"},
		{Index: 9, Kind: coordinator.EventLeaseFreed, TxID: "t8"},
		{Index: 10, Kind: coordinator.EventDone, TxID: "t1"}, // not a lease change
	} {
		obs.Observe(ev)
	}
	kinds := []history.LeaseEventKind{history.LeaseRestored, history.LeaseGranted, history.LeaseActivated,
		history.LeaseRenewed, history.LeaseReleased, history.LeaseExpired, history.LeaseFreed}
	if len(got) != len(kinds) {
		t.Fatalf("recorded %+v", got)
	}
	for i, k := range kinds {
		if got[i].Kind != k || got[i].Node != "c2" {
			t.Errorf("event %d = %+v, want kind %s on c2", i, got[i], k)
		}
	}
	g := got[1]
	if g.Index != 4 || g.TxID != "t1" || g.TTL != time.Minute || g.RenewSeq != 2 ||
		!reflect.DeepEqual(g.Players, []history.PlayerToken{{Player: "a", Token: 4}, {Player: "b", Token: 4}}) {
		t.Errorf("granted = %+v", g)
	}
	if _, ok := LeaseEventOf("c1", coordinator.Event{Kind: coordinator.EventDecided}); ok {
		t.Error("LeaseEventOf maps a decision")
	}
}

// gameStub votes NO for txid "no", fails Commit and Abort for txid "fail".
type gameStub struct{ calls []string }

func (g *gameStub) Prepare(_ context.Context, txid string, _ []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	g.calls = append(g.calls, "prepare "+txid)
	if txid == "no" {
		return []*smv1.PlayerRejection{{PlayerId: "a", Code: "OFFLINE"}}, nil
	}
	return nil, nil
}

func (g *gameStub) Commit(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	g.calls = append(g.calls, "commit "+txid)
	if txid == "fail" {
		return errors.New("disk full")
	}
	return nil
}

func (g *gameStub) Abort(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	g.calls = append(g.calls, "abort "+txid)
	if txid == "fail" {
		return errors.New("disk full")
	}
	return nil
}

func TestRecordingHandler(t *testing.T) {
	var got shardSlice
	game := &gameStub{}
	h := RecordingHandler("s1", game, &got)
	ctx := context.Background()
	ps := []*smv1.ShardPlayer{{PlayerId: "a", FencingToken: 3}, {PlayerId: "b", FencingToken: 3}}
	if rej, _ := h.Prepare(ctx, "yes", ps); rej != nil {
		t.Fatalf("YES vote changed: %v", rej)
	}
	if rej, _ := h.Prepare(ctx, "no", ps); len(rej) != 1 || rej[0].GetCode() != "OFFLINE" {
		t.Fatalf("NO vote changed: %v", rej)
	}
	if err := h.Commit(ctx, "yes", ps); err != nil {
		t.Fatal(err)
	}
	if err := h.Commit(ctx, "fail", ps); err == nil {
		t.Fatal("the handler's Commit error was swallowed")
	}
	if err := h.Abort(ctx, "fail", ps); err == nil {
		t.Fatal("the handler's Abort error was swallowed")
	}
	if err := h.Abort(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	if len(game.calls) != 6 {
		t.Fatalf("inner calls %v", game.calls)
	}
	want := []struct {
		kind history.ShardEventKind
		txid string
	}{{history.ShardPrepared, "yes"}, {history.ShardVotedNo, "no"}, {history.ShardCommitted, "yes"}, {history.ShardAborted, "x"}}
	if len(got) != len(want) {
		t.Fatalf("recorded %+v", got)
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].TxID != w.txid || got[i].Shard != "s1" {
			t.Errorf("event %d = %+v, want %+v", i, got[i], w)
		}
	}
	if !reflect.DeepEqual(got[0].Players, []history.PlayerToken{{Player: "a", Token: 3}, {Player: "b", Token: 3}}) {
		t.Errorf("players %+v", got[0].Players)
	}
}

// TestRecorderAdapter: the in-process recorder gets the same events, stamped by it.
func TestRecorderAdapter(t *testing.T) {
	now := time.Duration(0)
	rec := history.NewRecorder(func() time.Duration { now += time.Millisecond; return now }, 0.01)
	r := Recorder{Rec: rec}
	Observer("c1", r).Observe(coordinator.Event{Index: 3, Kind: coordinator.EventLeaseGranted, TxID: "t"})
	h := RecordingHandler("s1", &gameStub{}, r)
	h.Prepare(context.Background(), "t", nil)
	h.Prepare(context.Background(), "u", nil)
	got := rec.History()
	if len(got.LeaseEvents) != 1 || got.LeaseEvents[0].Node != "c1" || got.LeaseEvents[0].At == 0 {
		t.Errorf("lease events %+v", got.LeaseEvents)
	}
	if len(got.ShardEvents) != 2 || got.ShardEvents[1].Seq != 2 || got.ShardEvents[1].TxID != "u" {
		t.Errorf("shard events %+v", got.ShardEvents)
	}
}
