package shardmatch_test

import data.shardmatch

test_latency_over_ceiling if {
	slow := attr(pl("b2", "s1", 1530), "latency_ms", {"eu-west": 95})
	r := result(replace_player(good_5v5, 1, 1, slow))
	codes(r) == {"LATENCY"}
	players_of(r, "LATENCY") == {"b2"}
}

test_latency_at_ceiling_is_allowed if {
	ok := attr(pl("b2", "s1", 1530), "latency_ms", {"eu-west": 80})
	result(replace_player(good_5v5, 1, 1, ok)).allow == true
}

test_latency_missing_measurement if {
	unmeasured := attr(pl("b2", "s1", 1530), "latency_ms", {"us-east": 20})
	r := result(replace_player(good_5v5, 1, 1, unmeasured))
	codes(r) == {"LATENCY"}
	players_of(r, "LATENCY") == {"b2"}
}

test_latency_measured_to_the_requested_region if {
	# A us-east player with 70ms to eu-west may join an eu-west match.
	visitor := attr(attr(pl("b2", "s3", 1530), "region", "us-east"), "latency_ms", {"eu-west": 70, "us-east": 10})
	p := in_region(replace_player(good_5v5, 1, 1, visitor), "eu-west")
	result(p).allow == true
}

test_mixed_regions_without_a_requested_region if {
	visitor := attr(attr(pl("b2", "s3", 1530), "region", "us-east"), "latency_ms", {"eu-west": 70, "us-east": 10})
	r := result(replace_player(good_5v5, 1, 1, visitor))
	codes(r) == {"REGION"}
}

test_region_not_offered_by_mode if {
	r := result(in_region(good_5v5, "sa-east"))
	"REGION" in codes(r)
	"LATENCY" in codes(r) # nobody measured sa-east
}

test_player_region_falls_back_to_shard_region if {
	# With an empty region attribute, d2's region is s3's: us-east. The duel
	# then has players of two regions and no requested one.
	p := proposal("duel", [team([pl("d1", "s1", 2000)]), team([attr(pl("d2", "s3", 2000), "region", "")])])
	codes(result(p)) == {"REGION"}
	result(in_region(p, "eu-west")).allow == true
}

test_cross_region_disallowed if {
	q := object.union(data.shardmatch.modes["5v5"], {"allow_cross_region": false})
	visitor := attr(attr(pl("b2", "s3", 1530), "region", "us-east"), "latency_ms", {"eu-west": 70})
	r := shardmatch.match with input as input_with_queue(in_region(replace_player(good_5v5, 1, 1, visitor), "eu-west"), q)
	codes(r) == {"REGION"}
	players_of(r, "REGION") == {"b2"}
}

test_modes_without_region_knobs_need_no_region if {
	q := {"teams": 2, "team_size": 1}
	p := proposal("duel", [team([pl("d1", "s1", 2000)]), team([attr(pl("d2", "s3", 2000), "region", "us-east")])])
	r := shardmatch.match with input as input_with_queue(p, q)
	r.allow == true
}

test_cross_region_disallowed_player_without_region if {
	q := object.union(data.shardmatch.modes["5v5"], {"allow_cross_region": false})
	nowhere := attr(pl("b2", "s9", 1530), "region", "") # s9 is not a known shard
	r := shardmatch.match with input as input_with_queue(in_region(replace_player(good_5v5, 1, 1, nowhere), "eu-west"), q)
	codes(r) == {"REGION"}
	some d in r.deny
	contains(d.message, "from region \"unknown\"")
}
