package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestFactsAgreeWithRego holds the two definitions of input.facts together:
// the engine's (Go, facts) and the default bundle's
// (data.shardmatch.computed_facts, which Rego tests and hand-written documents
// use). The rules trust the facts, so the two must never differ.
func TestFactsAgreeWithRego(t *testing.T) {
	ctx := context.Background()
	s, err := readSnapshot(DefaultBundle(), "embedded:default")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBundle(s)
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){
		rego.Query("data.shardmatch.computed_facts"),
		rego.Store(inmem.NewFromObjectWithOpts(b.Data, inmem.OptRoundTripOnWrite(false))),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range b.Modules {
		if !isTestModule(m) {
			opts = append(opts, rego.ParsedModule(m.Parsed))
		}
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, p *smv1.Proposal, shards []*smv1.ShardInfo) {
		t.Helper()
		in, err := buildInput(p, shards, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		goFacts := in.(ast.Object).Get(ast.StringTerm("facts"))
		doc, err := ast.InterfaceToValue(map[string]any{
			"proposal": map[string]any{"mode": p.GetMode(), "teams": teamsNative(p), "metadata": stringMap(p.GetMetadata())},
			"shards":   shardsNative(shards),
		})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(doc), rego.EvalGenerateJSON(passTerm))
		if err != nil || len(rs) == 0 {
			t.Fatalf("%s: computed_facts: %v (%d results)", name, err, len(rs))
		}
		regoFacts := rs[0].Expressions[0].Value.(*ast.Term)
		if goFacts.Value.Compare(regoFacts.Value) != 0 {
			t.Errorf("%s: facts differ\n  go:   %v\n  rego: %v", name, goFacts, regoFacts)
		}
	}
	for _, c := range cases.All() {
		check(c.Name, c.Proposal, c.Shards)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		p, shards := randomProposal(rng)
		check(fmt.Sprintf("random-%d", i), p, shards)
	}
}

// randomProposal makes well-formed proposals with the awkward parts: duplicate
// players, empty teams, players without region on shards without region or on
// unknown shards, parties over several teams, sparse latency maps.
func randomProposal(rng *rand.Rand) (*smv1.Proposal, []*smv1.ShardInfo) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	shards := []*smv1.ShardInfo{
		{ShardId: "s1", Region: "eu-west"},
		{ShardId: "s2", Region: "us-east"},
		{ShardId: "s3"}, // no region
	}
	p := &smv1.Proposal{Mode: pick("5v5", "duel", "nope")}
	if rng.IntN(2) == 0 {
		p.Metadata = map[string]string{"region": pick("", "eu-west")}
	}
	for range rng.IntN(4) {
		t := &smv1.Team{}
		for range rng.IntN(6) {
			a := &smv1.PlayerAttributes{
				Mmr:     int32(rng.IntN(4000) - 500),
				Region:  pick("", "", "eu-west", "us-east", "ap-southeast"),
				PartyId: pick("", "", "", "p1", "p2"),
			}
			if rng.IntN(5) > 0 {
				a.LatencyMs = map[string]int32{}
				for _, r := range []string{"eu-west", "us-east", "ap-southeast"} {
					if rng.IntN(2) == 0 {
						a.LatencyMs[r] = int32(rng.IntN(300))
					}
				}
			}
			if rng.IntN(8) == 0 {
				a = nil
			}
			t.Players = append(t.Players, &smv1.Player{
				PlayerId:   fmt.Sprintf("p%d", rng.IntN(25)),
				ShardId:    pick("s1", "s2", "s3", "s4"),
				Attributes: a,
			})
		}
		p.Teams = append(p.Teams, t)
	}
	return p, shards
}

// teamsNative is proposal.teams as plain Go values: the reference that
// teamsJSON must encode the same document as.
func teamsNative(p *smv1.Proposal) []any {
	teams := make([]any, len(p.GetTeams()))
	for i, t := range p.GetTeams() {
		players := make([]any, len(t.GetPlayers()))
		for j, pl := range t.GetPlayers() {
			a := pl.GetAttributes()
			lat := make(map[string]any, len(a.GetLatencyMs()))
			for k, v := range a.GetLatencyMs() {
				lat[k] = int(v)
			}
			players[j] = map[string]any{
				"player_id": pl.GetPlayerId(),
				"shard_id":  pl.GetShardId(),
				"attributes": map[string]any{
					"mmr":        int(a.GetMmr()),
					"region":     a.GetRegion(),
					"party_id":   a.GetPartyId(),
					"latency_ms": lat,
					"extra":      stringMap(a.GetExtra()),
				},
			}
		}
		teams[i] = map[string]any{"players": players}
	}
	return teams
}

// shardsNative is input.shards as plain Go values.
func shardsNative(shards []*smv1.ShardInfo) map[string]any {
	m := make(map[string]any, len(shards))
	for _, s := range shards {
		m[s.GetShardId()] = map[string]any{
			"shard_id":         s.GetShardId(),
			"region":           s.GetRegion(),
			"capacity":         int(s.GetCapacity()),
			"labels":           stringMap(s.GetLabels()),
			"protocol_version": int(s.GetProtocolVersion()),
			"state":            shardState(s.GetState()),
		}
	}
	return m
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
