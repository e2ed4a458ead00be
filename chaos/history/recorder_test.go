package history

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRecorderConcurrent(t *testing.T) {
	var tick atomic.Int64
	now := func() time.Duration { return time.Duration(tick.Add(1)) * time.Microsecond }
	r := NewRecorder(now, 0.01)
	var wg sync.WaitGroup
	var shardMu sync.Mutex // a shard records under its own lock, in apply order
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				c := r.Invoke(Op{Process: fmt.Sprintf("p%d", w), Kind: OpPropose, ProposalID: fmt.Sprintf("P%d-%d", w, i), Result: ResultOK})
				shardMu.Lock()
				r.RecordShard(ShardEvent{Shard: "s1", Kind: ShardPrepared, TxID: fmt.Sprintf("tx%d-%d", w, i)})
				shardMu.Unlock()
				r.RecordLease(LeaseEvent{Node: "n1", Index: uint64(w*100 + i), Kind: LeaseGranted})
				if i%10 != 0 {
					c.Return(Reply{Result: ResultCommitted, TxID: fmt.Sprintf("tx%d-%d", w, i), Tokens: map[string]uint64{"a": 1}})
				}
				_ = r.History() // snapshots while recording
			}
		})
	}
	wg.Wait()
	h := r.History()
	if len(h.Ops) != 400 || len(h.ShardEvents) != 400 || len(h.LeaseEvents) != 400 {
		t.Fatalf("recorded %d ops, %d shard events, %d lease events", len(h.Ops), len(h.ShardEvents), len(h.LeaseEvents))
	}
	if h.Rho != 0.01 || h.Version != FormatVersion {
		t.Errorf("rho %v version %d", h.Rho, h.Version)
	}
	returned := 0
	for _, op := range h.Ops {
		if op.Result == ResultOK {
			t.Fatal("Invoke must ignore a result given up front")
		}
		if op.Returned {
			returned++
			if op.Return <= op.Invoke || op.TxID == "" {
				t.Errorf("bad return %+v", op)
			}
		}
	}
	if returned != 360 {
		t.Errorf("returned = %d, want 360", returned)
	}
	for i, ev := range h.ShardEvents {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has Seq %d: seqs must follow recording order", i, ev.Seq)
		}
	}
}

func TestRecorderReturnOnceAndCopies(t *testing.T) {
	var now time.Duration
	r := NewRecorder(func() time.Duration { now += time.Millisecond; return now }, 0.01)
	players := []PlayerRef{{"a", "s"}}
	c := r.Invoke(Op{Process: "p", Kind: OpRenew, TxID: "tx1", Players: players})
	players[0].Player = "changed"
	if !c.Return(Reply{Result: ResultOK}) || c.Return(Reply{Result: ResultFail}) {
		t.Fatal("only the first Return counts")
	}
	r.RecordShard(ShardEvent{Shard: "s", Seq: 7, Kind: ShardPrepared, TxID: "tx1"})
	r.RecordShard(ShardEvent{Shard: "s", Kind: ShardCommitted, TxID: "tx1"})
	r.SetFinal(Final{Shards: map[string]ShardFinal{"s": {Committed: []string{"tx1"}}}}, true)
	h := r.History()
	op := h.Ops[0]
	if op.Result != ResultOK || op.TxID != "tx1" || op.Players[0].Player != "a" || op.Invoke != time.Millisecond || op.Return != 2*time.Millisecond {
		t.Errorf("op = %+v", op)
	}
	if h.ShardEvents[1].Seq != 8 {
		t.Errorf("auto Seq = %d, want 8", h.ShardEvents[1].Seq)
	}
	if !h.Settled || h.Final.Shards["s"].Committed[0] != "tx1" {
		t.Errorf("final not recorded: %+v", h.Final)
	}
	h.Ops[0].Result = ResultFail
	h.Final.Shards["s"].Committed[0] = "mutated"
	if h2 := r.History(); h2.Ops[0].Result != ResultOK || h2.Final.Shards["s"].Committed[0] != "tx1" {
		t.Error("History must return a deep copy")
	}
}

func TestReportRendering(t *testing.T) {
	clean := Check(fixture())
	if s := clean.String(); !strings.HasPrefix(s, "history check: PASS") {
		t.Errorf("String() = %q", s)
	}
	if md := clean.Markdown(); !strings.Contains(md, "## History check: PASS") || !strings.Contains(md, "| I7 | no early expiry | ok | 0 |") {
		t.Errorf("Markdown():\n%s", md)
	}
	h := fixture()
	shardEvent(t, h, "sB", ShardCommitted, "tx1").Kind = ShardAborted
	h.Settled = false
	r := Check(h)
	if r.OK() || !r.Has(I1) || r.Count(I1) == 0 {
		t.Fatalf("want an I1 violation:\n%s", r)
	}
	if len(r.Notes) == 0 {
		t.Error("an unsettled history must say which checks were skipped")
	}
	s, md := r.String(), r.Markdown()
	for _, want := range []string{"FAIL", "I1 txid=tx1 shard=sB", "note: "} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	for _, want := range []string{"## History check: FAIL", "**violated**", "#### I1 atomicity", "### Notes", "| ops | 6 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q:\n%s", want, md)
		}
	}
	if again := Check(h); fmt.Sprint(again.Violations) != fmt.Sprint(r.Violations) {
		t.Error("reports must be deterministic")
	}
}
