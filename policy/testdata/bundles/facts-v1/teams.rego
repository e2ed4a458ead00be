package shardmatch

import input.facts
import input.proposal
import input.queue

# TEAM_COUNT: the mode plays with exactly `teams` teams.
violation contains denial("TEAM_COUNT", msg, []) if {
	want := queue.teams
	count(facts.teams) != want
	msg := sprintf("mode %q plays %d teams, the proposal has %d", [proposal.mode, want, count(facts.teams)])
}

# TEAM_SIZE: every team has between min_team_size and max_team_size players
# (team_size sets both). With no size knob a team needs at least one player.
violation contains denial("TEAM_SIZE", msg, ids) if {
	lo := object.get(queue, "min_team_size", object.get(queue, "team_size", 1))
	hi := object.get(queue, "max_team_size", object.get(queue, "team_size", 1000000))
	some i, t in facts.teams
	not between(t.players, lo, hi)
	ids := sort([id | id := proposal.teams[i].players[_].player_id])
	msg := sprintf("team %d has %d players, mode %q needs %s", [i + 1, t.players, proposal.mode, size_range(lo, hi)])
}

between(n, lo, hi) if {
	n >= lo
	n <= hi
}

size_range(lo, hi) := sprintf("exactly %d", [lo]) if lo == hi

size_range(lo, hi) := sprintf("%d to %d", [lo, hi]) if lo != hi
