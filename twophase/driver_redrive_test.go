package twophase

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// sendLog records what a driver sends, per shard.
type sendLog struct {
	mu    sync.Mutex
	sends map[string]int
}

func (l *sendLog) Send(_ context.Context, shard string, _ *smv1.ShardCommand) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sends[shard]++
	return nil
}

func (l *sendLog) count(shard string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sends[shard]
}

// ackLog is a Log that records acks.
type ackLog struct {
	mu    sync.Mutex
	acked []string
}

func (l *ackLog) Decide(context.Context, *smv1.Decide) (*smv1.Decision, error) {
	panic("the plans in these tests are decided")
}

func (l *ackLog) Acked(_ context.Context, _, shard string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked = append(l.acked, shard)
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A redrive sends the decision again at once, to the shards that have not acked only,
// and restarts the backoff; Settle stops the sends to a shard without an ack from it;
// DecisionSends counts every send per shard.
func TestDriverRedriveSettleAndAttempts(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	tr := &sendLog{sends: map[string]int{}}
	lg := &ackLog{}
	d, err := NewDriver(DriverConfig{Transport: tr, Log: lg, Clock: clk, Term: 3,
		ResendInitial: time.Second, ResendMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if d.Redrive("tx-1-0") || d.Settle("tx-1-0", "s1") {
		t.Fatal("Redrive/Settle of a txn the driver does not run reported true")
	}
	if _, ok := d.DecisionSends("tx-1-0"); ok {
		t.Fatal("DecisionSends of a txn the driver does not run reported ok")
	}
	d.Start(Plan{TxID: "tx-1-0", ProposalID: "p1", PrepareTimeout: time.Second,
		Shards:   map[string][]*smv1.ShardPlayer{"s1": {{PlayerId: "a"}}, "s2": {{PlayerId: "b"}}, "s3": {{PlayerId: "c"}}},
		Decision: &smv1.Decision{Txid: "tx-1-0", Outcome: smv1.Outcome_OUTCOME_COMMITTED},
		Acked:    []string{"s3"}})
	waitFor(t, "the first delivery", func() bool { return tr.count("s1") == 1 && tr.count("s2") == 1 })
	clk.WaitForTimers(1)
	// Backoff doubles: after 1s, 2s, 4s of silence the next resend is 8s away.
	for i, step := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clk.Advance(step)
		waitFor(t, "a resend", func() bool { return tr.count("s1") == i+2 })
		clk.WaitForTimers(1) // the next resend's timer, before the clock moves again
	}
	if !d.Redrive("tx-1-0") {
		t.Fatal("Redrive of a running txn reported false")
	}
	waitFor(t, "the redrive's send", func() bool { return tr.count("s1") == 5 && tr.count("s2") == 5 })
	if tr.count("s3") != 0 {
		t.Errorf("the decision went to s3, which had acked: %d sends", tr.count("s3"))
	}
	// The backoff started over at ResendInitial: one second brings the next resend.
	clk.Advance(time.Second)
	waitFor(t, "a resend one ResendInitial after the redrive", func() bool { return tr.count("s1") == 6 })
	sends, ok := d.DecisionSends("tx-1-0")
	if !ok || sends["s1"] != 6 || sends["s2"] != 6 || sends["s3"] != 0 {
		t.Errorf("DecisionSends = %v, %v; want s1:6 s2:6 and none to s3", sends, ok)
	}
	// s2 is settled for the shard: later resends skip it; s1's ack ends the run.
	if !d.Settle("tx-1-0", "s2") {
		t.Fatal("Settle of a running txn reported false")
	}
	waitFor(t, "the settle", func() bool {
		d.Redrive("tx-1-0")
		return tr.count("s1") >= 8 && tr.count("s2") <= 7
	})
	before := tr.count("s2")
	d.Redrive("tx-1-0")
	waitFor(t, "one more redrive", func() bool { return tr.count("s1") >= 9 })
	if tr.count("s2") != before {
		t.Errorf("the decision went to settled s2 again (%d → %d sends)", before, tr.count("s2"))
	}
	d.HandleReply(&smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "tx-1-0", ShardId: "s1", Outcome: smv1.Outcome_OUTCOME_COMMITTED}}})
	waitFor(t, "the run to end", func() bool { return d.Running() == 0 })
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.acked) != 1 || lg.acked[0] != "s1" {
		t.Errorf("acks logged %v, want only s1's (s2 was settled, not acked by the driver)", lg.acked)
	}
}
