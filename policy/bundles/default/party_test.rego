package shardmatch_test

test_party_on_one_team_is_allowed if {
	p := replace_player(replace_player(good_5v5, 0, 0, attr(pl("a1", "s1", 1500), "party_id", "P")), 0, 1, attr(pl("a2", "s1", 1520), "party_id", "P"))
	result(p).allow == true
}

test_party_split_across_teams if {
	p := replace_player(replace_player(good_5v5, 0, 0, attr(pl("a1", "s1", 1500), "party_id", "P")), 1, 0, attr(pl("b1", "s1", 1510), "party_id", "P"))
	r := result(p)
	codes(r) == {"PARTY_SPLIT"}
	players_of(r, "PARTY_SPLIT") == {"a1", "b1"}
	some d in r.deny
	contains(d.message, "teams [1, 2]")
}

test_empty_party_id_is_no_party if {
	p := replace_player(replace_player(good_5v5, 0, 0, attr(pl("a1", "s1", 1500), "party_id", "")), 1, 0, attr(pl("b1", "s1", 1510), "party_id", ""))
	result(p).allow == true
}
