# METADATA
# title: shardmatch default match policy
# description: |
#   The coordinator evaluates data.shardmatch.match on every proposal before it
#   reserves a single player. The answer is {"allow": bool, "deny": [denial]};
#   every denial is {"code", "message", "players"}. Each rule lives in its own
#   file and adds to the `violation` set; see docs/policy.md for the input
#   document and the data knobs each rule reads.
#
#   This runs on the coordinator's hot path, so every rule decides from
#   `facts` (aggregates of the proposal: MMR range, players per shard, ...)
#   and walks the players only once it knows it is violated, to name them.
package shardmatch

import input.facts
import input.proposal
import input.queue

# match is the document the coordinator queries: allowed when nothing denies.
# A policy that cannot read its input denies (INVALID_INPUT); it never admits
# by accident.
match := {"allow": count(deny) == 0, "deny": deny}

deny := violation if valid_input

deny := {denial("INVALID_INPUT", invalid_input_message, [])} if not valid_input

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
valid_input if is_object(facts)

# computed_facts is undefined for a malformed document.
computed_facts := object.union(
	{
		"players": count(players),
		"player_ids": {p.player_id | p := players[_]},
		"duplicates": {id |
			p := players[_]
			id := p.player_id
			count([1 | players[_].player_id == id]) > 1
		},
		"teams": [{"players": count(t.players), "mmr_sum": sum([m | m := t.players[_].attributes.mmr])} |
			t := proposal.teams[_]
		],
		"regions": {r | p := players[_]; r := player_region(p)},
		"regionless": count([1 | p := players[_]; not has_region(p)]),
		"latency": {r: {"measured": count(ms), "max": max(ms)} |
			some r in {x | some p in players; some x, _ in p.attributes.latency_ms}
			ms := [m | m := players[_].attributes.latency_ms[r]]
		},
		"parties": {party: {i | some i, t in proposal.teams; t.players[_].attributes.party_id == party} |
			some party in {x | x := players[_].attributes.party_id; x != ""}
		},
		"shard_players": {s: count([1 | players[_].shard_id == s]) |
			some s in {x | x := players[_].shard_id}
		},
	},
	mmr_range,
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

mmr_range := {"mmr_min": min(ms), "mmr_max": max(ms)} if {
	ms := [m | m := players[_].attributes.mmr]
	count(ms) > 0
}

mmr_range := {} if count(players) == 0

# A player's region is attributes.region, or their shard's region when that is
# empty.
player_region(p) := p.attributes.region if p.attributes.region != ""

player_region(p) := shards[p.shard_id].region if {
	p.attributes.region == ""
	shards[p.shard_id].region != ""
}

has_region(p) if player_region(p)

# --- DUPLICATE_PLAYER: one player cannot take two slots -------------------------

violation contains denial("DUPLICATE_PLAYER", msg, [id]) if {
	some id in facts.duplicates
	n := count([1 | players[_].player_id == id])
	msg := sprintf("player %s appears %d times in the proposal", [id, n])
}
