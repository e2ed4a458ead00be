package policy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// naiveBundle is the default bundle as first written, kept for comparison.
const naiveBundle = "testdata/bundles/naive"

// benchProposal is an allowed match of the default bundle: a 5v5 for n=10, a
// 50v50 battleground for n=100, players spread over max(3, n/10) shards, every
// player with two latency measurements and an extra attribute.
func benchProposal(n int) (*smv1.Proposal, []*smv1.ShardInfo) {
	mode := "5v5"
	if n > 10 {
		mode = "battleground"
	}
	nShards := max(3, n/10)
	shards := make([]*smv1.ShardInfo, nShards)
	for i := range shards {
		shards[i] = &smv1.ShardInfo{
			ShardId: fmt.Sprintf("shard-%02d", i), Region: "eu-west", Capacity: 5000,
			ProtocolVersion: 1, State: smv1.ShardState_SHARD_STATE_ACTIVE,
		}
	}
	p := &smv1.Proposal{ProposalId: "bench", Mode: mode, MatchTtlMs: 60_000,
		Metadata: map[string]string{"region": "eu-west"}}
	for t := range 2 {
		team := &smv1.Team{}
		for i := range n / 2 {
			k := t*n/2 + i
			team.Players = append(team.Players, &smv1.Player{
				PlayerId: fmt.Sprintf("player-%03d", k),
				ShardId:  shards[k%nShards].ShardId,
				Attributes: &smv1.PlayerAttributes{
					Mmr:       int32(1500 + (k*37)%200),
					Region:    "eu-west",
					LatencyMs: map[string]int32{"eu-west": int32(20 + k%40), "eu-central": 45},
					Extra:     map[string]string{"platform": "pc"},
				},
			})
		}
		p.Teams = append(p.Teams, team)
	}
	return p, shards
}

// benchEvaluate times Evaluate of an n-player match with the bundle in dir and
// reports the median and the 99th percentile of single evaluations.
func benchEvaluate(b *testing.B, dir string, n int) {
	e, err := policy.New(policy.Config{BundleDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	p, shards := benchProposal(n)
	ctx := context.Background()
	if v, err := e.Evaluate(ctx, p, shards); err != nil || !v.GetAllow() {
		b.Fatalf("benchmark proposal not allowed: %v %v", v, err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := e.Evaluate(ctx, p, shards); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkEvaluate10 is one evaluation of the default bundle for an allowed
// 10-player match (target: p99 under 100µs).
func BenchmarkEvaluate10(b *testing.B) { benchEvaluate(b, "", 10) }

// BenchmarkEvaluate100 is one evaluation for an allowed 100-player match.
func BenchmarkEvaluate100(b *testing.B) { benchEvaluate(b, "", 100) }

// BenchmarkEvaluate10Naive and BenchmarkEvaluate100Naive are the same with the
// first version of the bundle: the "before" of the optimisation.
func BenchmarkEvaluate10Naive(b *testing.B)  { benchEvaluate(b, naiveBundle, 10) }
func BenchmarkEvaluate100Naive(b *testing.B) { benchEvaluate(b, naiveBundle, 100) }

// BenchmarkEvaluate10Deny is a denied 10-player match (four rules object), which
// walks the players to name them.
func BenchmarkEvaluate10Deny(b *testing.B) {
	e, err := policy.New(policy.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var c cases.Case
	for _, x := range cases.All() {
		if x.Name == "several-rules" {
			c = x
		}
	}
	b.ReportAllocs()
	for range b.N {
		if v, _ := e.Evaluate(context.Background(), c.Proposal, c.Shards); v.GetAllow() {
			b.Fatal("allowed")
		}
	}
}

// TestNaiveBundleAgrees: the optimised default bundle and the naive first
// version give the same verdict to every case of the shared table.
func TestNaiveBundleAgrees(t *testing.T) {
	fast := newEngine(t, policy.Config{})
	naive := newEngine(t, policy.Config{BundleDir: naiveBundle})
	for _, c := range cases.All() {
		a, err1 := fast.Evaluate(context.Background(), c.Proposal, c.Shards)
		b, err2 := naive.Evaluate(context.Background(), c.Proposal, c.Shards)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", c.Name, err1, err2)
		}
		if a.GetAllow() != b.GetAllow() || len(a.GetDenials()) != len(b.GetDenials()) {
			t.Errorf("%s:\n  default %v\n  naive   %v", c.Name, a, b)
			continue
		}
		for i := range a.GetDenials() {
			da, db := a.GetDenials()[i], b.GetDenials()[i]
			if da.GetCode() != db.GetCode() || da.GetMessage() != db.GetMessage() || !slices.Equal(da.GetPlayers(), db.GetPlayers()) {
				t.Errorf("%s: denial %d differs:\n  default %v\n  naive   %v", c.Name, i, da, db)
			}
		}
	}
}

// TestEvaluateLatency guards against gross regressions (per-call compilation,
// a rule that walks every pair of players): the median evaluation of a
// 10-player match must stay well under a millisecond. The precise numbers are
// the benchmarks'.
func TestEvaluateLatency(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing test: skipped with -short and -race")
	}
	e := newEngine(t, policy.Config{})
	p, shards := benchProposal(10)
	lat := make([]time.Duration, 2000)
	for i := range lat {
		t0 := time.Now()
		if _, err := e.Evaluate(context.Background(), p, shards); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("10-player evaluation: p50 %v, p99 %v", p50, p99)
	if p50 > time.Millisecond {
		t.Errorf("median evaluation %v", p50)
	}
}
