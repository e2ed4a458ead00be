package shardmatch_test

import data.shardmatch

test_unknown_mode if {
	r := shardmatch.match with input as with_facts({"proposal": object.union(good_5v5, {"mode": "9v9"}), "shards": fixture_shards})
	r.allow == false
	codes(r) == {"UNKNOWN_MODE"}
}

test_unknown_mode_still_reports_mode_free_rules if {
	p := replace_player(replace_player(good_5v5, 0, 0, pl("griefer-7", "s1", 1500)), 1, 0, pl("streamer-1", "s1", 1500))
	r := shardmatch.match with input as with_facts({"proposal": object.union(p, {"mode": "9v9"})})
	codes(r) == {"UNKNOWN_MODE", "BLOCKLISTED"}
}

test_closed_mode if {
	r := result(object.union(good_5v5, {"mode": "ranked-5v5"}))
	r.allow == false
	"MODE_CLOSED" in codes(r)
	some d in r.deny
	d.code == "MODE_CLOSED"
	contains(d.message, "season 5")
}

test_reopened_mode_allows if {
	q := object.union(data.shardmatch.modes["5v5"], {"closed": false})
	r := shardmatch.match with input as input_with_queue(good_5v5, q)
	r.allow == true
}

test_queues_fill_in_team_sizes if {
	shardmatch.queues["5v5"].min_team_size == 5
	shardmatch.queues["5v5"].max_team_size == 5
	shardmatch.queues.battleground.min_team_size == 20
	shardmatch.queues.battleground.max_team_size == 50
	q := shardmatch.queue_config({"teams": 2})
	q.min_team_size == 1
	q.max_team_size == 1000000
}

test_queues_say_when_region_rules_apply if {
	shardmatch.queues["5v5"].region_rules == true
	shardmatch.queue_config({"teams": 2}).region_rules == false
	shardmatch.queue_config({"regions": []}).region_rules == true
	shardmatch.queue_config({"allow_cross_region": false}).region_rules == true
	shardmatch.queue_config({"allow_cross_region": true}).region_rules == false
}

test_queues_cover_every_mode if {
	{m | some m, _ in data.shardmatch.modes} == {m | some m, _ in shardmatch.queues}
}
