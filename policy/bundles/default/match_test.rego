package shardmatch_test

import data.shardmatch

test_good_5v5_is_allowed if {
	r := result(good_5v5)
	r.allow == true
	count(r.deny) == 0
}

test_good_duel_is_allowed if {
	r := result(good_duel)
	r.allow == true
	count(r.deny) == 0
}

test_every_denial_has_code_message_and_players if {
	bad := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 3000))
	r := result(bad)
	r.allow == false
	count(r.deny) >= 2
	every d in r.deny {
		is_string(d.code)
		is_string(d.message)
		d.message != ""
		is_array(d.players)
	}
}

test_several_rules_deny_at_once if {
	bad := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 3000))
	codes(result(bad)) == {"BLOCKLISTED", "MMR_SPREAD", "TEAM_MMR_GAP"}
}

test_duplicate_player if {
	r := result(replace_player(good_5v5, 1, 4, pl("a1", "s1", 1500)))
	codes(r) == {"DUPLICATE_PLAYER"}
	players_of(r, "DUPLICATE_PLAYER") == {"a1"}
}

# --- malformed input documents deny with INVALID_INPUT ---------------------------

test_empty_input_is_invalid if {
	r := shardmatch.match with input as {}
	r.allow == false
	codes(r) == {"INVALID_INPUT"}
}

test_teams_not_an_array_is_invalid if {
	r := shardmatch.match with input as input_for(object.union(good_5v5, {"teams": {"a": 1}}))
	r.allow == false
	codes(r) == {"INVALID_INPUT"}
}

test_player_without_attributes_is_invalid if {
	r := shardmatch.match with input as input_for(replace_player(good_5v5, 0, 0, {"player_id": "x", "shard_id": "s1"}))
	codes(r) == {"INVALID_INPUT"}
}

test_mmr_not_a_number_is_invalid if {
	r := shardmatch.match with input as input_for(replace_player(good_5v5, 0, 0, attr(pl("x", "s1", 1), "mmr", "1500")))
	codes(r) == {"INVALID_INPUT"}
}

test_empty_player_id_is_invalid if {
	r := shardmatch.match with input as input_for(replace_player(good_5v5, 0, 0, pl("", "s1", 1500)))
	codes(r) == {"INVALID_INPUT"}
}

test_team_not_an_object_is_invalid if {
	r := shardmatch.match with input as input_for(object.union(good_5v5, {"teams": [1, 2]}))
	codes(r) == {"INVALID_INPUT"}
}

test_shards_are_optional if {
	r := shardmatch.match with input as with_facts({"proposal": good_5v5, "queue": data.shardmatch.queues["5v5"]})
	r.allow == true
}

test_document_without_facts_is_invalid if {
	r := shardmatch.match with input as {"proposal": good_5v5, "queue": data.shardmatch.queues["5v5"], "shards": fixture_shards}
	codes(r) == {"INVALID_INPUT"}
}

test_computed_facts if {
	p := replace_player(replace_player(good_5v5, 0, 0, attr(pl("a1", "s1", 1500), "party_id", "P")), 1, 0, attr(pl("b1", "s1", 1510), "party_id", "P"))
	f := shardmatch.computed_facts with input as {"proposal": in_region(p, "eu-west"), "shards": fixture_shards}
	f.players == 10
	count(f.player_ids) == 10
	f.duplicates == set()
	f.team_players == [5, 5]
	f.team_mmr_sums == [7540, 7550]
	f.team_players_min == 5
	f.team_players_max == 5
	f.team_mmr_gap == 2
	f.mmr_min == 1470
	f.mmr_max == 1550
	f.regions == {"eu-west"}
	f.regionless == 0
	f.mmr_spread == 80
	f.teams == 2
	f.latency_max_all == {"eu-west": 30}
	f.latency_max == {"eu-west": 30}
	f.parties == {"P": {0, 1}}
	f.shard_players == {"s1": 4, "s2": 3, "s3": 3}
	f.shard_players_max == 4
	f.shard_share_max == 0.4
}
