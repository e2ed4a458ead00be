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
