# METADATA
# title: shardmatch default match policy, first (naive) version
# description: |
#   FROZEN: this is the default bundle as first written, before it was made
#   fast. It is kept only so that `go test -bench Naive ./policy/` shows the
#   before-and-after of that work and TestNaiveBundleAgrees shows that the
#   rewrite changed no verdict of the shared table. Do not edit or deploy it.
#
#   It walks every player in every rule (comprehensions over all players,
#   per-player type checks, a partial object per party and shard) instead of
#   reading the engine's input.facts.
#
#   The coordinator evaluates data.shardmatch.match on every proposal before it
#   reserves a single player. The answer is {"allow": bool, "deny": [denial]};
#   every denial is {"code", "message", "players"}. Each rule lives in its own
#   file and adds to the `violation` set; see docs/policy.md for the input
#   document and the data knobs each rule reads.
package shardmatch

# match is the document the coordinator queries.
match := {"allow": allow, "deny": deny}

default allow := false

# allow needs a well-formed input document and no rule objecting. A policy that
# cannot read its input denies; it never admits by accident.
allow if {
	valid_input
	count(violation) == 0
}

deny := violation if valid_input

deny := {denial("INVALID_INPUT", invalid_input_message, [])} if not valid_input

invalid_input_message := concat(" ", [
	"the input document does not match the schema in docs/policy.md:",
	"want proposal.mode (string), proposal.teams[].players[] with player_id, shard_id",
	"and attributes {mmr, region, party_id, latency_ms}",
])

# denial builds one entry of deny.
denial(code, message, players) := {"code": code, "message": message, "players": players}

# --- the parts of the input every rule uses -----------------------------------

mode := input.proposal.mode

# queue is the mode's config: the engine copies data.shardmatch.modes[mode] into
# the input so that the input document alone shows every limit a rule compares
# against. It is absent when the mode is not configured.
queue := input.queue

teams := input.proposal.teams

players := [p | some team in teams; some p in team.players]

player_ids := {p.player_id | some p in players}

shards := object.get(input, "shards", {})

valid_input if {
	is_string(input.proposal.mode)
	is_array(input.proposal.teams)
	every team in input.proposal.teams {
		is_array(team.players)
	}
	every p in players {
		valid_player(p)
	}
}

valid_player(p) if {
	is_string(p.player_id)
	p.player_id != ""
	is_string(p.shard_id)
	is_number(p.attributes.mmr)
	is_string(p.attributes.region)
	is_string(p.attributes.party_id)
	is_object(p.attributes.latency_ms)
}

# --- DUPLICATE_PLAYER: one player cannot take two slots -------------------------

violation contains denial("DUPLICATE_PLAYER", msg, [id]) if {
	count(player_ids) != count(players)
	some id in player_ids
	n := count([1 | some p in players; p.player_id == id])
	n > 1
	msg := sprintf("player %s appears %d times in the proposal", [id, n])
}
