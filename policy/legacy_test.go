package policy

// The engine's evaluation path as it was before the allocation work (commit
// d3c7f6a: the input as a lazy object of Go values, the facts built term by
// term), kept so that the benchmarks measure "before" and "after" in one run.
// Test code only; the benchmarks reach it through NewLegacy (export_test.go).

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Keys of the facts that the current facts no longer have (kTeams, the same
// key, held an array of teams then).
var (
	kMMRSum       = ast.StringTerm("mmr_sum")
	kLatencyFacts = ast.StringTerm("latency")
	kMeasured     = ast.StringTerm("measured")
	kMax          = ast.StringTerm("max")
)

// legacyEngine is the old evaluation path: a rego.PreparedEvalQuery per
// bundle, evaluated through rego with OPA's own caches, on the lazy input.
type legacyEngine struct {
	query    rego.PreparedEvalQuery
	queues   map[string]*ast.Term
	revision string
	timeout  time.Duration
}

// newLegacyEngine compiles the bundle in dir as compile did. Its evaluation
// timeout is a second, as the benchmarks give the engine, so that a stall of
// this shared machine does not fail a benchmark.
func newLegacyEngine(dir string) (*legacyEngine, error) {
	fsys, source, err := bundleFS(dir)
	if err != nil {
		return nil, err
	}
	s, err := readSnapshot(fsys, source)
	if err != nil {
		return nil, err
	}
	b, err := parseBundle(s)
	if err != nil {
		return nil, err
	}
	queues, err := queuesOf(b.Data)
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObjectWithOpts(b.Data,
		inmem.OptRoundTripOnWrite(false),
		inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(store),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
		rego.UnsafeBuiltins(unsafeBuiltins),
	}
	for _, m := range b.Modules {
		if !isTestModule(m) {
			opts = append(opts, rego.ParsedModule(m.Parsed))
		}
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		return nil, err
	}
	return &legacyEngine{query: pq, queues: queues, revision: revisionOf(b.Manifest.Revision, s.hash), timeout: time.Second}, nil
}

// passTerm hands the query's answer over as the AST term it is.
func passTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// legacyEvaluate is Engine.Evaluate as it was (without the stats and the
// test hook, which cost nothing).
func (le *legacyEngine) evaluate(ctx context.Context, p *smv1.Proposal, shards []*smv1.ShardInfo) (*smv1.PolicyVerdict, error) {
	in, err := legacyBuildInput(p, shards, le.queues)
	if err != nil {
		return denyVerdict(CodeInvalidInput, err.Error(), le.revision), err
	}
	stop := topdown.NewCancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(le.timeout, func() { timedOut.Store(true); stop.Cancel() })
	defer timer.Stop()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, stop.Cancel)()
	}
	rs, err := le.query.Eval(ctx, rego.EvalParsedInput(in), rego.EvalGenerateJSON(passTerm),
		rego.EvalExternalCancel(stop), rego.EvalMetrics(noMetrics))
	if err != nil {
		return nil, err
	}
	var t *ast.Term
	if len(rs) > 0 && len(rs[0].Expressions) > 0 {
		t, _ = rs[0].Expressions[0].Value.(*ast.Term)
	}
	allow, denials, err := parseMatch(t)
	if err != nil {
		return nil, err
	}
	return verdictOf(allow, denials, le.revision), nil
}

func legacyBuildInput(p *smv1.Proposal, shards []*smv1.ShardInfo, queues map[string]*ast.Term) (ast.Value, error) {
	if err := validate(p, shards); err != nil {
		return nil, err
	}
	doc := map[string]any{
		"proposal": map[string]any{
			"proposal_id":        p.GetProposalId(),
			"mode":               p.GetMode(),
			"teams":              legacyLazyJSON(func() any { return teamsNative(p) }),
			"match_ttl_ms":       p.GetMatchTtlMs(),
			"prepare_timeout_ms": p.GetPrepareTimeoutMs(),
			"metadata":           stringMap(p.GetMetadata()),
		},
		"shards": legacyLazyJSON(func() any { return shardsNative(shards) }),
		"facts":  legacyFacts(p, shards),
	}
	if q, ok := queues[p.GetMode()]; ok {
		doc["queue"] = q.Value
	}
	return ast.LazyObject(doc), nil
}

type legacyLazyJSON func() any

// MarshalJSON builds the value.
func (f legacyLazyJSON) MarshalJSON() ([]byte, error) { return json.Marshal(f()) }
func legacyFacts(p *smv1.Proposal, shards []*smv1.ShardInfo) ast.Value {
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
