package runner

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/scenario"
)

func s(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

func propose(ret time.Duration, result history.OpResult, reason string) history.Op {
	return history.Op{Kind: history.OpPropose, Invoke: ret - 10*time.Millisecond, Return: ret, Returned: true, Result: result, Reason: reason}
}

func TestResumeChecks(t *testing.T) {
	h := &history.History{Ops: []history.Op{
		propose(s(1), history.ResultCommitted, ""),
		propose(s(11), history.ResultCommitted, ""), // 1 s after the heal at 10 s
		propose(s(26), history.ResultCommitted, ""), // 6 s after the heal at 20 s: too late
		{Kind: history.OpRenew, Return: s(21), Returned: true, Result: history.ResultOK},
	}}
	got := resumeChecks(h, []time.Duration{s(10), s(20), s(20), s(29)}, s(30), s(3))
	if len(got) != 2 { // the duplicate heal is compacted; 29 s is too close to the end
		t.Fatalf("got %d results: %+v", len(got), got)
	}
	if !got[0].Pass || got[0].Measured != s(1) {
		t.Errorf("heal at 10s: %+v", got[0])
	}
	if got[1].Pass || got[1].Measured != s(6) {
		t.Errorf("heal at 20s must fail (6s > 3s): %+v", got[1])
	}
	// No commit at all after a heal fails.
	got = resumeChecks(&history.History{Ops: []history.Op{propose(s(1), history.ResultCommitted, "")}}, []time.Duration{s(5)}, s(30), s(3))
	if len(got) != 1 || got[0].Pass || !strings.Contains(got[0].Detail, "no commit") {
		t.Errorf("no commit after the heal: %+v", got)
	}
	if resumeChecks(h, []time.Duration{s(10)}, s(30), 0) != nil {
		t.Error("a zero bound must disable the check")
	}
}

func TestCommitRatio(t *testing.T) {
	h := &history.History{}
	for i := 0; i < 97; i++ {
		h.Ops = append(h.Ops, propose(s(1), history.ResultCommitted, ""))
	}
	h.Ops = append(h.Ops,
		propose(s(1), history.ResultAborted, "REASON_PLAYER_LEASED"), // contention: not counted
		propose(s(1), history.ResultAborted, "REASON_POLICY_DENIED"), // policy: not counted
		propose(s(1), history.ResultAborted, "REASON_SHARD_TIMEOUT"), // a lost vote: counts against
		propose(s(1), history.ResultUnknown, ""),                     // counts against
		history.Op{Kind: history.OpPropose, Invoke: s(2)},            // never returned: counts against
		history.Op{Kind: history.OpRelease, Returned: true, Result: history.ResultFail},
	)
	r, c, n := commitRatio(h)
	if c != 97 || n != 100 || r != 0.97 {
		t.Fatalf("ratio %v = %d/%d, want 97/100", r, c, n)
	}
	if lr, _ := ratioCheck(h, 0.97); !lr.Pass {
		t.Errorf("0.97 meets a 0.97 floor: %+v", lr)
	}
	if lr, _ := ratioCheck(h, 0.99995); lr.Pass {
		t.Errorf("0.97 must fail a 0.99995 floor: %+v", lr)
	}
	if lr, _ := ratioCheck(&history.History{}, 0.5); lr.Pass {
		t.Error("no proposals at all must not pass")
	}
}

func TestTerminationAndCrashChecks(t *testing.T) {
	if r := terminationCheck(true, s(4), s(10)); !r.Pass {
		t.Errorf("settled in 4s within 10s: %+v", r)
	}
	if r := terminationCheck(true, s(12), s(10)); r.Pass {
		t.Errorf("settled in 12s is over 10s: %+v", r)
	}
	if r := terminationCheck(false, s(3), s(10)); r.Pass {
		t.Errorf("not settled must fail: %+v", r)
	}
	if r := crashCheck(nil); !r.Pass {
		t.Error("no crash must pass")
	}
	if r := crashCheck([]string{"c2"}); r.Pass || !strings.Contains(r.Detail, "c2") {
		t.Errorf("a crash must fail and name the node: %+v", r)
	}
}

func TestInstancesRepeat(t *testing.T) {
	// Built without the scenario package's parser: the runner only reads the fields.
	got := instancesOf(t)
	want := []time.Duration{s(2), s(5), s(8), s(11)}
	if len(got) != len(want) {
		t.Fatalf("got %d instances", len(got))
	}
	for i := range want {
		if got[i].at != want[i] {
			t.Errorf("instance %d at %s, want %s", i, got[i].at, want[i])
		}
	}
}

func instancesOf(t *testing.T) []instance {
	t.Helper()
	return instances([]scenario.Fault{
		{Kind: scenario.FaultKill, At: scenario.Duration(s(5)), Every: scenario.Duration(s(3)), Count: 3},
		{Kind: scenario.FaultPause, At: scenario.Duration(s(2))},
	})
}

func TestMatchShapes(t *testing.T) {
	for _, c := range []struct {
		size    int
		players []int // players per shape
		err     bool
	}{{0, []int{2, 10}, false}, {2, []int{2}, false}, {10, []int{10}, false}, {4, []int{4}, false}, {1, nil, true}} {
		got, err := matchShapes(c.size)
		if (err != nil) != c.err {
			t.Fatalf("size %d: err %v", c.size, err)
		}
		var players []int
		for _, s := range got {
			players = append(players, s.Teams*s.TeamSize)
		}
		if !slices.Equal(players, c.players) {
			t.Errorf("size %d: shapes of %v players, want %v", c.size, players, c.players)
		}
	}
}

func TestConverged(t *testing.T) {
	done := []history.TxnFinal{{TxID: "t1", State: history.StateDone}}
	final := func(indexes ...uint64) history.Final {
		f := history.Final{Nodes: map[string]history.NodeFinal{}, Shards: map[string]history.ShardFinal{"s1": {}}}
		for i, ix := range indexes {
			f.Nodes[string(rune('a'+i))] = history.NodeFinal{Txns: done, AppliedIndex: ix}
		}
		return f
	}
	// All at one index: settled at once.
	if m, ok := history.Converged(final(7, 7, 7), 0); !ok || m != 7 {
		t.Errorf("one index: %d %v", m, ok)
	}
	// A moving log: not at one index, not settled on the first poll ...
	m, ok := history.Converged(final(10, 12, 11), 0)
	if ok || m != 12 {
		t.Errorf("first poll of a moving log: %d %v", m, ok)
	}
	// ... a follower still behind the previous poll's highest index: not settled ...
	if _, ok := history.Converged(final(11, 14, 13), m); ok {
		t.Error("a node behind the previous poll's highest index must not settle")
	}
	// ... every node at or past it: settled.
	if _, ok := history.Converged(final(12, 14, 13), m); !ok {
		t.Error("every node caught up with the previous poll must settle")
	}
	// Anything not DONE, or a shard holding a prepared txn, never settles.
	f := final(5, 5, 5)
	f.Nodes["a"] = history.NodeFinal{Txns: []history.TxnFinal{{TxID: "t2", State: "COMMITTED"}}, AppliedIndex: 5}
	if _, ok := history.Converged(f, 5); ok {
		t.Error("a txn not DONE must not settle")
	}
	f = final(5, 5, 5)
	f.Shards["s1"] = history.ShardFinal{Prepared: []string{"t3"}}
	if _, ok := history.Converged(f, 5); ok {
		t.Error("a prepared txn at a shard must not settle")
	}
	if _, ok := history.Converged(history.Final{}, 0); ok {
		t.Error("no nodes must not settle")
	}
}
