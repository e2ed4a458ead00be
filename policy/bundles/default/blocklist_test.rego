package shardmatch_test

import data.shardmatch

test_blocklisted_pair_on_opposite_teams if {
	p := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 1510))
	r := result(p)
	codes(r) == {"BLOCKLISTED"}
	players_of(r, "BLOCKLISTED") == {"griefer-7", "streamer-1"}
}

test_blocklisted_pair_on_one_team if {
	p := replace_player(replace_player(good_5v5, 0, 0, pl("smurf-3", "s1", 1500)), 0, 1, pl("smurf-4", "s1", 1510))
	codes(result(p)) == {"BLOCKLISTED"}
}

test_blocklist_entry_works_in_either_direction if {
	# Only streamer-1 lists griefer-7 here; the pair is still kept apart, and
	# reported once.
	p := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 1510))
	r := shardmatch.match with input as input_for(p)
		with data.shardmatch.blocklist as {"streamer-1": ["griefer-7"], "griefer-7": ["streamer-1"]}
	count(r.deny) == 1
	r2 := shardmatch.match with input as input_for(p) with data.shardmatch.blocklist as {"streamer-1": ["griefer-7"]}
	codes(r2) == {"BLOCKLISTED"}
}

test_blocklisted_player_alone_is_allowed if {
	result(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500))).allow == true
}

test_no_blocklist_in_data if {
	p := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 1510))
	r := shardmatch.match with input as input_for(p) with data.shardmatch.blocklist as {}
	r.allow == true
}
