package policy

import (
	"fmt"
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
//	  "facts":    aggregates of the proposal (see facts.go)
//	}
//
// Every field is always present (proto3 defaults included) so that rules need no
// defaulting. The document is built as AST values, except the players and the
// shards, which are converted only where a rule reads them (see buildInput).

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
// The document is an ast.LazyObject: a part becomes an AST value when a rule
// first reads it. The facts, the queue, the proposal's strings and metadata
// are AST values from the start: the rules' common path reads only those. The
// players (proposal.teams), the shards and the proposal's numbers are values
// OPA does not know, which it converts by encoding them to JSON (teamsJSON,
// shardsJSON, proposalField) the first time a rule reads them. The default
// bundle decides an allowed match from the facts, so it never pays for the
// players; a denial that names players pays for converting them once. (No
// lazy part may go into an ast.Object: that hashes its values, which converts
// them.)
func buildInput(p *smv1.Proposal, shards []*smv1.ShardInfo, queues map[string]*ast.Term) (ast.Value, error) {
	if err := validate(p, shards); err != nil {
		return nil, err
	}
	// The strings are AST values from the start, exactly as the proposal has
	// them (JSON would replace invalid UTF-8); the numbers wait, as the
	// players do, until a rule reads them.
	proposal := map[string]any{
		"proposal_id":        ast.String(p.GetProposalId()),
		"mode":               ast.String(p.GetMode()),
		"teams":              teamsJSON{p},
		"match_ttl_ms":       proposalField[fieldMatchTTL]{p},
		"prepare_timeout_ms": proposalField[fieldPrepareTimeout]{p},
		"metadata":           stringObject(p.GetMetadata()),
	}

	doc := map[string]any{
		"proposal": ast.LazyObject(proposal),
		"shards":   shardsJSON{&shards},
		"facts":    facts(p, shards),
	}
	if q, ok := queues[p.GetMode()]; ok {
		doc["queue"] = q.Value
	}
	return ast.LazyObject(doc), nil
}

// stringObject is a map[string]string as an AST object.
func stringObject(m map[string]string) ast.Object {
	if len(m) == 0 {
		return emptyObject.Value.(ast.Object)
	}
	terms := make([]ast.Term, 0, 2*len(m))
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		terms = append(terms, ast.Term{Value: ast.String(k)}, ast.Term{Value: ast.String(v)})
		items = append(items, [2]*ast.Term{&terms[len(terms)-2], &terms[len(terms)-1]})
	}
	return ast.NewObject(items...)
}

// shardState is the enum name without its prefix: "ACTIVE", "DRAINING", ...
func shardState(s smv1.ShardState) string {
	return strings.TrimPrefix(s.String(), "SHARD_STATE_")
}
