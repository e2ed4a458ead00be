package shardmatch

import input.facts
import input.proposal
import input.queue

# TEAM_COUNT: the mode plays with exactly `teams` teams.
violation contains team_count_denial if facts.teams != queue.teams

team_count_denial := denial("TEAM_COUNT", msg, []) if {
	msg := sprintf("mode %q plays %d teams, the proposal has %d", [proposal.mode, queue.teams, facts.teams])
}

# TEAM_SIZE: every team has between min_team_size and max_team_size players
# (team_size sets both; queues in modes.rego fills them in). With no size
# knob a team needs at least one player. The smallest and the largest team
# (facts.team_players_min/max) say whether any team is out of range; only then
# are the teams walked to name it. A team both too small and too large (min
# above max) gives the same denial twice, which the set keeps once.
violation contains team_size_denial(i) if {
	facts.team_players_min < queue.min_team_size
	some i, n in facts.team_players
	n < queue.min_team_size
}

violation contains team_size_denial(i) if {
	facts.team_players_max > queue.max_team_size
	some i, n in facts.team_players
	n > queue.max_team_size
}

team_size_denial(i) := denial("TEAM_SIZE", msg, ids) if {
	n := facts.team_players[i]
	ids := sort([id | id := proposal.teams[i].players[_].player_id])
	msg := sprintf("team %d has %d players, mode %q needs %s", [i + 1, n, proposal.mode, size_range(queue.min_team_size, queue.max_team_size)])
}

size_range(lo, hi) := sprintf("exactly %d", [lo]) if lo == hi

size_range(lo, hi) := sprintf("%d to %d", [lo, hi]) if lo != hi
