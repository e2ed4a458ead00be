package shardmatch

import input.facts

# BLOCKLISTED: two players on each other's blocklist never share a match, on the
# same team or on opposite teams. data.shardmatch.blocklist is indexed by
# player: {"a": ["b", "c"]} keeps a away from b and from c (either direction of
# the entry is enough). Evaluation costs one lookup per player, whatever the
# size of the list.
violation contains blocklisted_denial(a, b) if {
	blocklist := data.shardmatch.blocklist # one read from the store, then lookups in memory
	some a in facts.player_ids
	some b in blocklist[a]
	facts.player_ids[b]
}

# An entry in both directions names the same pair: one denial.
blocklisted_denial(a, b) := denial("BLOCKLISTED", msg, pair) if {
	pair := sort([a, b])
	msg := sprintf("players %s and %s are blocklisted from sharing a match", pair)
}
