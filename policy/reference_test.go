package policy

// Test-only references: OPA's plain prepared query of a bundle, and random
// proposals near the limits of the default bundle's modes.

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// plainQuery prepares the bundle in dir ("" is the embedded default) as a plain
// rego.PreparedEvalQuery with OPA's own caches: the reference the engine's own
// evaluation path is checked against.
func plainQuery(dir string) (rego.PreparedEvalQuery, error) {
	fsys, source, err := bundleFS(dir)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	s, err := readSnapshot(fsys, source)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	b, err := parseBundle(s)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	store := inmem.NewFromObjectWithOpts(b.Data,
		inmem.OptRoundTripOnWrite(false),
		inmem.OptReturnASTValuesOnRead(true))
	opts := regoOptions(store)
	for _, m := range b.Modules {
		if !isTestModule(m) {
			opts = append(opts, rego.ParsedModule(m.Parsed))
		}
	}
	return rego.New(opts...).PrepareForEval(context.Background())
}

// passTerm hands the query's answer over as the AST term it is.
func passTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

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
