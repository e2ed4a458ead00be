package shardmatch_test

test_shard_share_over_limit if {
	# s1 supplies a1 a2 a3 b1 b2 b3 b4: 7 of 10 > 60%.
	p := replace_player(replace_player(replace_player(good_5v5, 0, 2, pl("a3", "s1", 1480)), 1, 2, pl("b3", "s1", 1470)), 1, 3, pl("b4", "s1", 1540))
	r := result(p)
	codes(r) == {"SHARD_SHARE"}
	players_of(r, "SHARD_SHARE") == {"a1", "a2", "a3", "b1", "b2", "b3", "b4"}
	some d in r.deny
	contains(d.message, "7 of 10 players (70%)")
}

test_shard_share_at_limit_is_allowed if {
	# s1 supplies 6 of 10: exactly 60%.
	p := replace_player(replace_player(good_5v5, 0, 2, pl("a3", "s1", 1480)), 1, 2, pl("b3", "s1", 1470))
	result(p).allow == true
}

test_duel_has_no_shard_share_rule if {
	p := proposal("duel", [team([pl("d1", "s1", 2000)]), team([pl("d2", "s1", 2000)])])
	result(p).allow == true
}
