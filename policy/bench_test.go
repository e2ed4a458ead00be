package policy_test

import (
	"context"
	"fmt"
	"runtime"
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

// denyProposal is benchProposal(n) with four rules objecting (as the shared
// case "several-rules"): a blocklisted pair, a player 3000 MMR above the rest
// (MMR_SPREAD, TEAM_MMR_GAP) and one with 200ms to the match's region. The
// denials name players, so the players are converted for OPA.
func denyProposal(n int) (*smv1.Proposal, []*smv1.ShardInfo) {
	p, shards := benchProposal(n)
	a, b := p.Teams[0].Players, p.Teams[1].Players
	a[0].PlayerId, b[0].PlayerId = "griefer-7", "streamer-1"
	a[1].Attributes.Mmr += 3000
	b[1].Attributes.LatencyMs["eu-west"] = 200
	return p, shards
}

// liveHeap is the long-lived heap the benchmarks keep while they run.
var liveHeap struct {
	nodes  []*heapNode
	blocks [][]byte
}

// heapNode is 64 bytes with pointers, like the leases, proposals and map
// entries a coordinator holds: the collector has to trace every one of them.
type heapNode struct {
	next, peer *heapNode
	key        string
	n          [4]int64
}

// heapConfig is a live heap: ptrMiB of small linked objects and bytesMiB of
// 64 KiB byte slices (Raft log entries, snapshots, buffers), which the
// collector does not scan.
type heapConfig struct {
	name             string
	ptrMiB, bytesMiB int
}

var heapConfigs = []heapConfig{
	{"heap=0", 0, 0},
	{"heap=256MiB", 64, 192},
	{"heap=256MiB-ptrs", 256, 0},
}

// makeLiveHeap allocates h's live heap into liveHeap.
func makeLiveHeap(h heapConfig) {
	liveHeap.nodes = make([]*heapNode, h.ptrMiB<<20/64)
	for i := range liveHeap.nodes {
		liveHeap.nodes[i] = &heapNode{key: "lease", n: [4]int64{int64(i)}}
		if i > 0 {
			liveHeap.nodes[i].next = liveHeap.nodes[i-1]
			liveHeap.nodes[i].peer = liveHeap.nodes[(i*7919)%i]
		}
	}
	liveHeap.blocks = make([][]byte, h.bytesMiB<<20/(64<<10))
	for i := range liveHeap.blocks {
		liveHeap.blocks[i] = make([]byte, 64<<10)
	}
	runtime.GC()
}

// benchLatency times eval b.N times, one call at a time, and reports the
// median and the tail of the single calls besides the mean (ns/op), and how
// many garbage collections ran per thousand calls.
func benchLatency(b *testing.B, eval func() (*smv1.PolicyVerdict, error), wantAllow bool) {
	if v, err := eval(); err != nil || v.GetAllow() != wantAllow {
		b.Fatalf("benchmark proposal: verdict %v, error %v, want allow=%v", v, err, wantAllow)
	}
	lat := make([]time.Duration, b.N)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := eval(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
	b.ReportMetric(float64(after.NumGC-before.NumGC)*1000/float64(b.N), "gc/kop")
}

// BenchmarkEvaluate is one evaluation of the default bundle by the engine: for
// an allowed and a denied match of 10 and 100 players, with no other live heap and with a 256 MiB heap of small objects,
// as a coordinator has. The target is a p99 under 100µs for 10 players.
func BenchmarkEvaluate(b *testing.B) {
	ctx := context.Background()
	// A generous timeout: a stall of this shared machine must not turn an
	// evaluation into a POLICY_ERROR and fail the benchmark.
	after, err := policy.New(policy.Config{EvalTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	for _, heap := range heapConfigs {
		makeLiveHeap(heap)
		b.Run(heap.name, func(b *testing.B) {
			for _, n := range []int{10, 100} {
				for _, allow := range []bool{true, false} {
					p, shards := benchProposal(n)
					verdict := "allow"
					if !allow {
						p, shards = denyProposal(n)
						verdict = "deny"
					}
					b.Run(fmt.Sprintf("players=%d/%s", n, verdict), func(b *testing.B) {
						benchLatency(b, func() (*smv1.PolicyVerdict, error) { return after.Evaluate(ctx, p, shards) }, allow)
					})
				}
			}
		})
	}
	makeLiveHeap(heapConfig{})
}

// BenchmarkMachineFloor is what this machine does to the tail of a call that
// does a fixed amount of work, for reading BenchmarkEvaluate's p99: a CPU
// loop calibrated to ~30µs (an evaluation's median), alone and allocating
// what an evaluation allocates (16 KB in 256 objects), under the same live
// heaps. Its p99 over its p50 is the part of an evaluation's tail that no
// policy work removes.
func BenchmarkMachineFloor(b *testing.B) {
	iters := calibrateSpin(30 * time.Microsecond)
	var keep [][]byte
	for _, heap := range heapConfigs[:2] {
		makeLiveHeap(heap)
		b.Run(heap.name, func(b *testing.B) {
			b.Run("cpu", func(b *testing.B) {
				benchLatency(b, func() (*smv1.PolicyVerdict, error) { spin(iters); return allowed, nil }, true)
			})
			b.Run("cpu+alloc", func(b *testing.B) {
				benchLatency(b, func() (*smv1.PolicyVerdict, error) {
					spin(iters * 9 / 10)
					keep = keep[:0]
					for range 256 {
						keep = append(keep, make([]byte, 64))
					}
					return allowed, nil
				}, true)
			})
		})
	}
	makeLiveHeap(heapConfig{})
}

var (
	allowed   = &smv1.PolicyVerdict{Allow: true}
	spinState uint64
)

// spin runs n rounds of a multiply-add the compiler cannot drop.
func spin(n int) {
	x := spinState | 1
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	spinState = x
}

// calibrateSpin returns the rounds of spin that take about d (the median of
// 200 timings).
func calibrateSpin(d time.Duration) int {
	const probe = 100_000
	lat := make([]time.Duration, 200)
	for i := range lat {
		t0 := time.Now()
		spin(probe)
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	return int(float64(probe) * float64(d) / float64(lat[len(lat)/2]))
}

// BenchmarkEvaluateNaive evaluates an allowed match with the first version of
// the bundle (testdata/bundles/naive), which walks every player in every rule.
func BenchmarkEvaluateNaive(b *testing.B) {
	e, err := policy.New(policy.Config{BundleDir: naiveBundle, EvalTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100} {
		p, shards := benchProposal(n)
		b.Run(fmt.Sprintf("players=%d", n), func(b *testing.B) {
			benchLatency(b, func() (*smv1.PolicyVerdict, error) { return e.Evaluate(context.Background(), p, shards) }, true)
		})
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
