package shardmatch_test

test_mmr_spread if {
	# b5 at 2300 against a3 at 1480: spread 820 > 800. Team averages stay
	# within 150 (1508 vs 1670 would not, so a1 moves up to balance).
	p := replace_player(replace_player(good_5v5, 1, 4, pl("b5", "s3", 2300)), 0, 0, pl("a1", "s1", 1800))
	r := result(p)
	codes(r) == {"MMR_SPREAD"}
	players_of(r, "MMR_SPREAD") == {"b5", "b3"}
}

test_mmr_spread_at_limit_is_allowed if {
	# 1470 (b3) to 2270: exactly 800.
	p := replace_player(replace_player(good_5v5, 1, 4, pl("b5", "s3", 2270)), 0, 0, pl("a1", "s1", 1800))
	result(p).allow == true
}

test_team_mmr_gap if {
	# Team 2 averages 1500 + 160 = 1670 against team 1's 1508: gap 162 > 150,
	# and no two players are more than 800 apart.
	p := proposal("5v5", [
		good_5v5.teams[0],
		team([pl("b1", "s1", 1670), pl("b2", "s1", 1690), pl("b3", "s2", 1630), pl("b4", "s3", 1700), pl("b5", "s3", 1660)]),
	])
	r := result(p)
	codes(r) == {"TEAM_MMR_GAP"}
	some d in r.deny
	contains(d.message, "team 1: 1508")
	contains(d.message, "team 2: 1670")
}

test_no_mmr_knobs_no_mmr_rules if {
	q := {"teams": 2, "team_size": 1}
	p := proposal("duel", [team([pl("d1", "s1", 0)]), team([pl("d2", "s3", 5000)])])
	r := data.shardmatch.match with input as input_with_queue(p, q)
	r.allow == true
}
