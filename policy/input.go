package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The input document, as docs/policy.md describes it:
//
//	{
//	  "proposal": {proposal_id, mode, teams: [{players: [{player_id, shard_id,
//	               attributes: {mmr, region, party_id, latency_ms, extra}}]}],
//	               match_ttl_ms, prepare_timeout_ms, metadata},
//	  "queue":    data.shardmatch.modes[mode]   (absent for an unknown mode),
//	  "shards":   {shard_id: {shard_id, region, capacity, labels,
//	               protocol_version, state}},
//	  "facts":    aggregates of the proposal (see facts)
//	}
//
// Every field is always present (proto3 defaults included) so that rules need no
// defaulting. The facts are built as AST values; the rest is converted only
// where a rule reads it (see buildInput).

// Keys of the facts object, made once.
var (
	kTeams        = ast.StringTerm("teams")
	kPlayers      = ast.StringTerm("players")
	kPlayerIDs    = ast.StringTerm("player_ids")
	kDuplicates   = ast.StringTerm("duplicates")
	kMMRSum       = ast.StringTerm("mmr_sum")
	kMMRMin       = ast.StringTerm("mmr_min")
	kMMRMax       = ast.StringTerm("mmr_max")
	kRegions      = ast.StringTerm("regions")
	kRegionless   = ast.StringTerm("regionless")
	kLatencyFacts = ast.StringTerm("latency")
	kMeasured     = ast.StringTerm("measured")
	kMax          = ast.StringTerm("max")
	kParties      = ast.StringTerm("parties")
	kShardPlayers = ast.StringTerm("shard_players")
)

// validate reports the first structural problem that makes a proposal
// impossible to judge. Semantic problems (unknown mode, wrong team sizes, ...)
// are the policy's business, not this function's.
func validate(p *smv1.Proposal, shards []*smv1.ShardInfo) error {
	if p == nil {
		return fmt.Errorf("%w: nil proposal", ErrInvalidInput)
	}
	for i, t := range p.GetTeams() {
		if t == nil {
			return fmt.Errorf("%w: teams[%d] is nil", ErrInvalidInput, i)
		}
		for j, pl := range t.GetPlayers() {
			if pl == nil {
				return fmt.Errorf("%w: teams[%d].players[%d] is nil", ErrInvalidInput, i, j)
			}
			if pl.GetPlayerId() == "" {
				return fmt.Errorf("%w: teams[%d].players[%d] has no player_id", ErrInvalidInput, i, j)
			}
		}
	}
	for i, s := range shards {
		if s == nil {
			return fmt.Errorf("%w: shards[%d] is nil", ErrInvalidInput, i)
		}
		if s.GetShardId() == "" {
			return fmt.Errorf("%w: shards[%d] has no shard_id", ErrInvalidInput, i)
		}
		for _, o := range shards[:i] {
			if o.GetShardId() == s.GetShardId() {
				return fmt.Errorf("%w: shard %q listed twice", ErrInvalidInput, s.GetShardId())
			}
		}
	}
	return nil
}

// buildInput validates p and shards and builds the input document. queues maps
// a mode to its config (data.shardmatch.modes[mode]).
//
// The document is lazy (ast.LazyObject): a part becomes an AST value only when
// a rule reads it. The facts and the queue are AST values from the start; the
// proposal's scalar fields are plain Go values; the teams and the shards are
// not even built until read: OPA converts a value of a type it does not know
// by encoding it to JSON (ast.InterfaceToValue), and lazyJSON encodes on
// demand. The default bundle decides an allowed match from the facts, so it
// never pays for the players; a denial that names players pays for reading
// them once.
func buildInput(p *smv1.Proposal, shards []*smv1.ShardInfo, queues map[string]*ast.Term) (ast.Value, error) {
	if err := validate(p, shards); err != nil {
		return nil, err
	}
	doc := map[string]any{
		"proposal": map[string]any{
			"proposal_id":        p.GetProposalId(),
			"mode":               p.GetMode(),
			"teams":              lazyJSON(func() any { return teamsNative(p) }),
			"match_ttl_ms":       p.GetMatchTtlMs(),
			"prepare_timeout_ms": p.GetPrepareTimeoutMs(),
			"metadata":           stringMap(p.GetMetadata()),
		},
		"shards": lazyJSON(func() any { return shardsNative(shards) }),
		"facts":  facts(p, shards),
	}
	if q, ok := queues[p.GetMode()]; ok {
		doc["queue"] = q.Value
	}
	return ast.LazyObject(doc), nil
}

// lazyJSON is a part of the input built only when a rule reads it: OPA then
// encodes it to JSON and converts the result.
type lazyJSON func() any

// MarshalJSON builds the value.
func (f lazyJSON) MarshalJSON() ([]byte, error) { return json.Marshal(f()) }

// teamsNative is proposal.teams as plain Go values.
func teamsNative(p *smv1.Proposal) []any {
	teams := make([]any, len(p.GetTeams()))
	for i, t := range p.GetTeams() {
		players := make([]any, len(t.GetPlayers()))
		for j, pl := range t.GetPlayers() {
			a := pl.GetAttributes() // nil-safe getters: a nil message reads as defaults
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

// facts are aggregates of the proposal that the rules' common path reads
// instead of walking every player: counting in Go costs a fraction of a
// comprehension in Rego. They are neutral facts, not judgements; the bundle
// defines the very same document in Rego (computed_facts in match.rego), which
// its tests use, and TestFactsAgreeWithRego holds the two together.
//
//	players        number of player slots
//	player_ids     set of player ids
//	duplicates     set of player ids that take more than one slot
//	teams          per team: {players, mmr_sum}
//	mmr_min/max    lowest and highest MMR (absent without players)
//	regions        set of the players' regions: attributes.region, or the
//	               region of the player's shard when that is empty
//	regionless     number of players with neither
//	latency        per region anyone measured: {measured: players with a
//	               measurement, max: the highest}
//	parties        per non-empty party_id: set of the team indexes it is on
//	shard_players  per shard: number of players it supplies
func facts(p *smv1.Proposal, shards []*smv1.ShardInfo) ast.Value {
	// A match names a handful of regions, shards and parties: small slices
	// searched linearly beat maps here, and allocate less.
	type count struct {
		key      string
		n, max   int
		teams    []int // parties: team indexes
		measured int   // latency: players with a measurement
	}
	find := func(xs []count, key string) int {
		for i := range xs {
			if xs[i].key == key {
				return i
			}
		}
		return -1
	}
	var (
		n, regionless  int
		mmrMin, mmrMax int32
		ids            = ast.NewSetWithCapacity(16)
		dups           = ast.NewSet()
		teams          = make([]*ast.Term, len(p.GetTeams()))
		regions        []string
		latency        []count
		parties        []count
		shardPlayers   []count
	)
	for i, t := range p.GetTeams() {
		var sum int64
		for _, pl := range t.GetPlayers() {
			a := pl.GetAttributes()
			if id := ast.StringTerm(pl.GetPlayerId()); ids.Contains(id) {
				dups.Add(id)
			} else {
				ids.Add(id)
			}
			m := a.GetMmr()
			sum += int64(m)
			if n == 0 || m < mmrMin {
				mmrMin = m
			}
			if n == 0 || m > mmrMax {
				mmrMax = m
			}
			n++
			r := a.GetRegion()
			if r == "" {
				for _, s := range shards {
					if s.GetShardId() == pl.GetShardId() {
						r = s.GetRegion()
						break
					}
				}
			}
			if r == "" {
				regionless++
			} else if !slices.Contains(regions, r) {
				regions = append(regions, r)
			}
			for region, ms := range a.GetLatencyMs() {
				k := find(latency, region)
				if k < 0 {
					latency = append(latency, count{key: region, max: int(ms)})
					k = len(latency) - 1
				}
				latency[k].measured++
				latency[k].max = max(latency[k].max, int(ms))
			}
			if party := a.GetPartyId(); party != "" {
				k := find(parties, party)
				if k < 0 {
					parties = append(parties, count{key: party})
					k = len(parties) - 1
				}
				if !slices.Contains(parties[k].teams, i) {
					parties[k].teams = append(parties[k].teams, i)
				}
			}
			k := find(shardPlayers, pl.GetShardId())
			if k < 0 {
				shardPlayers = append(shardPlayers, count{key: pl.GetShardId()})
				k = len(shardPlayers) - 1
			}
			shardPlayers[k].n++
		}
		teams[i] = ast.NewTerm(ast.NewObject(
			ast.Item(kPlayers, ast.InternedTerm(len(t.GetPlayers()))),
			ast.Item(kMMRSum, ast.InternedTerm(sum)),
		))
	}
	items := make([][2]*ast.Term, 0, 11)
	items = append(items,
		ast.Item(kPlayers, ast.InternedTerm(n)),
		ast.Item(kPlayerIDs, ast.NewTerm(ids)),
		ast.Item(kDuplicates, ast.NewTerm(dups)),
		ast.Item(kTeams, ast.NewTerm(ast.NewArray(teams...))),
	)
	if n > 0 {
		items = append(items,
			ast.Item(kMMRMin, ast.InternedTerm(int(mmrMin))),
			ast.Item(kMMRMax, ast.InternedTerm(int(mmrMax))))
	}
	regionTerms := make([]*ast.Term, len(regions))
	for i, r := range regions {
		regionTerms[i] = ast.StringTerm(r)
	}
	latItems := make([][2]*ast.Term, len(latency))
	for i, l := range latency {
		latItems[i] = ast.Item(ast.StringTerm(l.key), ast.NewTerm(ast.NewObject(
			ast.Item(kMeasured, ast.InternedTerm(l.measured)),
			ast.Item(kMax, ast.InternedTerm(l.max)))))
	}
	partyItems := make([][2]*ast.Term, len(parties))
	for i, party := range parties {
		idx := make([]*ast.Term, len(party.teams))
		for j, t := range party.teams {
			idx[j] = ast.InternedTerm(t)
		}
		partyItems[i] = ast.Item(ast.StringTerm(party.key), ast.SetTerm(idx...))
	}
	shardItems := make([][2]*ast.Term, len(shardPlayers))
	for i, s := range shardPlayers {
		shardItems[i] = ast.Item(ast.StringTerm(s.key), ast.InternedTerm(s.n))
	}
	items = append(items,
		ast.Item(kRegions, ast.SetTerm(regionTerms...)),
		ast.Item(kRegionless, ast.InternedTerm(regionless)),
		ast.Item(kLatencyFacts, ast.NewTerm(ast.NewObject(latItems...))),
		ast.Item(kParties, ast.NewTerm(ast.NewObject(partyItems...))),
		ast.Item(kShardPlayers, ast.NewTerm(ast.NewObject(shardItems...))),
	)
	return ast.NewObject(items...)
}

// shardState is the enum name without its prefix: "ACTIVE", "DRAINING", ...
func shardState(s smv1.ShardState) string {
	return strings.TrimPrefix(s.String(), "SHARD_STATE_")
}
