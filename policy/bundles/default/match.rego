# METADATA
# title: shardmatch default match policy
# description: |
#   The coordinator evaluates data.shardmatch.match on every proposal before it
#   reserves a single player. The answer is {"allow": bool, "deny": [denial]};
#   every denial is {"code", "message", "players"}. Each rule lives in its own
#   file and adds to the `violation` set; see docs/policy.md for the input
#   document and the data knobs each rule reads.
#
#   This runs on the coordinator's hot path, so every rule has the shape
#   `violation contains <denial> if <test>`: the test compares a fact (an
#   aggregate of the proposal: MMR spread, players per shard, ...) with a
#   knob, and is all an allowed match costs; the denial, built in the head by
#   a function or helper rule, walks the players to name them only once the
#   test has found a violation.
package shardmatch

import input.facts
import input.proposal
import input.queue

# match is the document the coordinator queries: allowed when nothing denies.
# A policy that cannot read its input (a document without facts, see below)
# denies (INVALID_INPUT); it never admits by accident.
match := {"allow": count(violation) == 0, "deny": violation} if is_object(facts)
else := {"allow": false, "deny": {denial("INVALID_INPUT", invalid_input_message, [])}}

invalid_input_message := concat(" ", [
	"the input document has no input.facts: the engine adds them to every document",
	"it builds from a valid proposal; a hand-written document must add",
	"data.shardmatch.computed_facts, which is undefined if the document does not",
	"follow the schema in docs/policy.md",
])

# denial builds one entry of deny.
denial(code, message, players) := {"code": code, "message": message, "players": players}

# input.queue (imported as queue) is the mode's config: the engine copies
# data.shardmatch.modes[mode] into the input so that the input document alone
# shows every limit a rule compares against. It is absent when the mode is not
# configured. (Imports, unlike helper rules, cost nothing at evaluation time.)

# players lists every player; rules use it only to name the culprits of a
# violation they found from the facts.
players := [p | p := proposal.teams[_].players[_]]

shards := object.get(input, "shards", {})

# --- facts ------------------------------------------------------------------

# input.facts (imported as facts) are aggregates of the proposal: MMR range,
# players per shard, ... The engine computes them in Go, after validating the
# proposal. computed_facts below is their definition in Rego: tests and
# hand-written documents add them with
#
#	f := data.shardmatch.computed_facts with input as doc
#	data.shardmatch.match with input as object.union(doc, {"facts": f})
#
# and the engine's tests hold the Go and the Rego versions together. A document
# without facts is invalid: the rules could not judge it.

# computed_facts is undefined for a malformed document.
computed_facts := object.union(
	{
		"players": count(players),
		"teams": count(proposal.teams),
		"player_ids": {p.player_id | p := players[_]},
		"duplicates": {id |
			p := players[_]
			id := p.player_id
			count([1 | players[_].player_id == id]) > 1
		},
		"team_players": [count(t.players) | t := proposal.teams[_]],
		"team_mmr_sums": [sum([m | m := t.players[_].attributes.mmr]) | t := proposal.teams[_]],
		"regions": {r | p := players[_]; r := player_region(p)},
		"regionless": count([1 | p := players[_]; not has_region(p)]),
		"latency_max": {r: max([m | m := players[_].attributes.latency_ms[r]]) | some r in measured_regions},
		"latency_max_all": {r: max([m | m := players[_].attributes.latency_ms[r]]) |
			some r in measured_regions
			count([1 | players[_].attributes.latency_ms[r]]) == count(players)
		},
		"parties": {party: {i | some i, t in proposal.teams; t.players[_].attributes.party_id == party} |
			some party in {x | x := players[_].attributes.party_id; x != ""}
		},
		"shard_players": {s: count([1 | players[_].shard_id == s]) |
			some s in {x | x := players[_].shard_id}
		},
	},
	object.union(mmr_range, extremes),
) if well_formed

# well_formed checks, in Rego, what the engine checks in Go.
well_formed if {
	is_string(proposal.mode)
	is_array(proposal.teams)
	every team in proposal.teams {
		is_array(team.players)
	}
	every p in players {
		is_string(p.player_id)
		p.player_id != ""
		is_string(p.shard_id)
		is_number(p.attributes.mmr)
		is_string(p.attributes.region)
		is_string(p.attributes.party_id)
		is_object(p.attributes.latency_ms)
	}
}

measured_regions := {r | some p in players; some r, _ in p.attributes.latency_ms}

mmr_range := {"mmr_min": min(ms), "mmr_max": max(ms), "mmr_spread": max(ms) - min(ms)} if {
	ms := [m | m := players[_].attributes.mmr]
	count(ms) > 0
}

mmr_range := {} if count(players) == 0

# extremes are the facts that rules compare against a limit instead of
# walking teams or shards: the fewest and the most players on a team (absent
# without teams), the gap between the highest and the lowest team average MMR
# (absent when no team has players) and the most players one shard supplies,
# alone and as a share of the players (absent without players).
extremes := object.union(object.union(team_extremes, team_gap), shard_extremes)

team_extremes := {"team_players_min": min(ns), "team_players_max": max(ns)} if {
	ns := [count(t.players) | t := proposal.teams[_]]
	count(ns) > 0
}

team_extremes := {} if count(proposal.teams) == 0

team_gap := {"team_mmr_gap": max(avgs) - min(avgs)} if {
	avgs := [a |
		t := proposal.teams[_]
		count(t.players) > 0
		a := sum([m | m := t.players[_].attributes.mmr]) / count(t.players)
	]
	count(avgs) > 0
}

team_gap := {} if {
	every t in proposal.teams {
		count(t.players) == 0
	}
}

shard_extremes := {"shard_players_max": max(ns), "shard_share_max": max(ns) / count(players)} if {
	ns := [count([1 | players[_].shard_id == s]) | some s in {x | x := players[_].shard_id}]
	count(ns) > 0
}

shard_extremes := {} if count(players) == 0

# A player's region is attributes.region, or their shard's region when that is
# empty.
player_region(p) := p.attributes.region if p.attributes.region != ""

player_region(p) := shards[p.shard_id].region if {
	p.attributes.region == ""
	shards[p.shard_id].region != ""
}

has_region(p) if player_region(p)

# --- DUPLICATE_PLAYER: one player cannot take two slots -------------------------

violation contains duplicate_denial(id) if some id in facts.duplicates

duplicate_denial(id) := denial("DUPLICATE_PLAYER", msg, [id]) if {
	msg := sprintf("player %s appears %d times in the proposal", [id, count([1 | players[_].player_id == id])])
}
