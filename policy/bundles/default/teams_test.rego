package shardmatch_test

test_too_few_teams if {
	r := result(proposal("5v5", [good_5v5.teams[0]]))
	codes(r) == {"TEAM_COUNT"}
}

test_too_many_teams if {
	r := result(proposal("duel", [team([pl("d1", "s1", 2000)]), team([pl("d2", "s3", 2000)]), team([pl("d3", "s2", 2000)])]))
	codes(r) == {"TEAM_COUNT"}
}

test_no_teams if {
	r := result(proposal("duel", []))
	r.allow == false
	codes(r) == {"TEAM_COUNT", "REGION"}
}

test_short_team if {
	short := proposal("5v5", [good_5v5.teams[0], team(array.slice(good_5v5.teams[1].players, 0, 4))])
	r := result(short)
	codes(r) == {"TEAM_SIZE"}
	players_of(r, "TEAM_SIZE") == {"b1", "b2", "b3", "b4"}
	some d in r.deny
	contains(d.message, "team 2 has 4 players")
}

test_empty_team if {
	r := result(proposal("duel", [team([pl("d1", "s1", 2000)]), team([])]))
	codes(r) == {"TEAM_SIZE"}
}

test_team_size_range if {
	result(raid(10)).allow == true
	result(raid(25)).allow == true
	codes(result(raid(9))) == {"TEAM_SIZE"}
	codes(result(raid(26))) == {"TEAM_SIZE"}
}

# raid is a one-team raid of n players spread over s1..s3.
raid(n) := proposal("raid", [team([pl(sprintf("r%d", [i]), sprintf("s%d", [(i % 3) + 1]), 1500) | some i in numbers.range(1, n)])])
