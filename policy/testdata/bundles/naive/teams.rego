package shardmatch

# TEAM_COUNT: the mode plays with exactly `teams` teams.
violation contains denial("TEAM_COUNT", msg, []) if {
	want := queue.teams
	count(teams) != want
	msg := sprintf("mode %q plays %d teams, the proposal has %d", [mode, want, count(teams)])
}

# TEAM_SIZE: every team has between min_team_size and max_team_size players
# (team_size sets both). With no size knob a team needs at least one player.
violation contains denial("TEAM_SIZE", msg, ids) if {
	lo := team_size_min
	hi := team_size_max
	some i, team in teams
	n := count(team.players)
	not between(n, lo, hi)
	ids := sort([p.player_id | some p in team.players])
	msg := sprintf("team %d has %d players, mode %q needs %s", [i + 1, n, mode, size_range(lo, hi)])
}

team_size_min := object.get(queue, "min_team_size", object.get(queue, "team_size", 1))

team_size_max := object.get(queue, "max_team_size", object.get(queue, "team_size", 1000000))

between(n, lo, hi) if {
	n >= lo
	n <= hi
}

size_range(lo, hi) := sprintf("exactly %d", [lo]) if lo == hi

size_range(lo, hi) := sprintf("%d to %d", [lo, hi]) if lo != hi
