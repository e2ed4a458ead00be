package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// factsV1Bundle is the default bundle as the facts-based version left it,
// before the allocation work: the "before" of the benchmarks, together with
// the evaluation path of legacy_test.go.
const factsV1Bundle = "testdata/bundles/facts-v1"

// TestAgreesWithFactsV1 holds the optimised engine and bundle to the verdicts
// of the version before them (legacy input path, testdata/bundles/facts-v1):
// the same allow, and the same denials (code, message, players), for every
// shared case and thousands of random proposals that exercise every rule.
func TestAgreesWithFactsV1(t *testing.T) {
	ctx := context.Background()
	now, err := New(Config{EvalTimeout: 10 * time.Second}) // compares verdicts; the default 50ms is for production, not for a test sharing 2 CPUs with the suite
	if err != nil {
		t.Fatal(err)
	}
	before, err := newLegacyEngine(factsV1Bundle)
	if err != nil {
		t.Fatal(err)
	}
	denials := map[string]int{}
	allowed := 0
	check := func(name string, p *smv1.Proposal, shards []*smv1.ShardInfo) {
		t.Helper()
		a, err1 := now.Evaluate(ctx, p, shards)
		b, err2 := before.evaluate(ctx, p, shards)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v / %v", name, err1, err2)
		}
		a.Revision, b.Revision = "", ""
		if !proto.Equal(a, b) {
			t.Errorf("%s: verdicts differ\n  now:    %v\n  before: %v", name, a, b)
		}
		if a.GetAllow() {
			allowed++
		}
		for _, d := range a.GetDenials() {
			denials[d.GetCode()]++
		}
	}
	for _, c := range cases.All() {
		check(c.Name, c.Proposal, c.Shards)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		p, shards := randomMatch(rng)
		check(fmt.Sprintf("random-%d", i), p, shards)
	}
	// Every rule must have denied something, or the comparison proves little.
	for _, code := range []string{"UNKNOWN_MODE", "MODE_CLOSED", "TEAM_COUNT", "TEAM_SIZE", "MMR_SPREAD",
		"TEAM_MMR_GAP", "REGION", "LATENCY", "PARTY_SPLIT", "BLOCKLISTED", "SHARD_SHARE", "DUPLICATE_PLAYER"} {
		if denials[code] == 0 {
			t.Errorf("no proposal was denied with %s", code)
		}
	}
	if allowed < n/20 {
		t.Errorf("only %d of %d random proposals allowed: the allow path is hardly compared", allowed, n)
	}
	t.Logf("%d allowed; denials by code: %v", allowed, denials)
}

// randomMatch makes proposals near the limits of the default bundle's modes:
// mostly well-formed teams of about the right size, MMRs, latencies and shard
// shares around the knobs, blocklisted players, parties, duplicates, players
// without region, and modes that are closed, unknown or cross-region.
func randomMatch(rng *rand.Rand) (*smv1.Proposal, []*smv1.ShardInfo) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	// Half the proposals are tidy, so that many pass every rule: each
	// perturbation is then rare.
	odds := 1
	if rng.IntN(2) == 0 {
		odds = 20
	}
	one := func(n int) bool { return rng.IntN(n*odds) == 0 }
	shards := []*smv1.ShardInfo{
		{ShardId: "s1", Region: "eu-west", Capacity: 5000, State: smv1.ShardState_SHARD_STATE_ACTIVE},
		{ShardId: "s2", Region: "eu-west", Labels: map[string]string{"tier": "x"}},
		{ShardId: "s3", Region: "us-east"},
		{ShardId: "s4"}, // no region
	}
	mode := pick("duel", "5v5", "5v5", "5v5", "ranked-5v5", "battleground", "raid", "9v9")
	teams, size := 2, 5
	switch mode {
	case "duel":
		size = 1
	case "battleground":
		size = 18 + rng.IntN(6)
	case "raid":
		teams, size = 1, 8+rng.IntN(4)
	}
	if one(10) {
		teams += rng.IntN(3) - 1
	}
	p := &smv1.Proposal{ProposalId: "rnd", Mode: mode}
	switch rng.IntN(4) {
	case 0:
		p.Metadata = map[string]string{"region": pick("eu-west", "us-east", "sa-east", "")}
	case 1:
		p.Metadata = map[string]string{"other": "x"}
	}
	base := int32(1000 + rng.IntN(2000))
	spread := []int{50, 150, 400, 900, 2500}[rng.IntN(5)]
	if odds > 1 {
		spread = 100
	}
	shardPick := rng.IntN(3)
	next := 0
	for range teams {
		t := &smv1.Team{}
		n := size
		if one(8) {
			n += rng.IntN(3) - 1
		}
		for range max(0, n) {
			next++
			id := fmt.Sprintf("p%d", next)
			switch rng.IntN(40 * odds) {
			case 0:
				id = pick("griefer-7", "streamer-1", "streamer-2", "smurf-3", "smurf-4")
			case 1:
				id = fmt.Sprintf("p%d", max(1, next-1)) // a duplicate
			}
			shard := "s1"
			switch {
			case shardPick == 1:
				shard = pick("s1", "s2", "s3")
			case shardPick == 2 || one(6):
				shard = pick("s1", "s2", "s3", "s4", "s5")
			}
			a := &smv1.PlayerAttributes{
				Mmr:       base + int32(rng.IntN(spread+1)),
				Region:    "eu-west",
				LatencyMs: map[string]int32{"eu-west": int32(10 + rng.IntN(40+70/odds)), "us-east": int32(10 + rng.IntN(60))},
				Extra:     map[string]string{"platform": "pc"},
			}
			if one(4) {
				a.Region = pick("us-east", "")
			}
			if one(15) {
				delete(a.LatencyMs, "eu-west")
			}
			if rng.IntN(6) == 0 {
				a.PartyId = fmt.Sprintf("party-%d", rng.IntN(3))
				if odds > 1 {
					a.PartyId += fmt.Sprint("-", len(p.Teams)) // one team's party
				}
			}
			if one(30) {
				a = nil
			}
			t.Players = append(t.Players, &smv1.Player{PlayerId: id, ShardId: shard, Attributes: a})
		}
		p.Teams = append(p.Teams, t)
	}
	return p, shards
}
