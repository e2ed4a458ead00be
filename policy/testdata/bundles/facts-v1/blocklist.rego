package shardmatch

import input.facts

# BLOCKLISTED: two players on each other's blocklist never share a match, on the
# same team or on opposite teams. data.shardmatch.blocklist is indexed by
# player: {"a": ["b", "c"]} keeps a away from b and from c (either direction of
# the entry is enough). Evaluation costs one lookup per player, whatever the
# size of the list.
violation contains denial("BLOCKLISTED", msg, pair) if {
	blocklist := data.shardmatch.blocklist # one read from the store, then lookups in memory
	a := facts.player_ids[_]
	b := blocklist[a][_]
	facts.player_ids[b]
	pair := sort([a, b])
	msg := sprintf("players %s and %s are blocklisted from sharing a match", pair)
}
