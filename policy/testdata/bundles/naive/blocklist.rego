package shardmatch

# BLOCKLISTED: two players on each other's blocklist never share a match, on the
# same team or on opposite teams. data.shardmatch.blocklist is indexed by
# player: {"a": ["b", "c"]} keeps a away from b and from c (either direction of
# the entry is enough). Evaluation costs one lookup per player, whatever the
# size of the list.
violation contains denial("BLOCKLISTED", msg, pair) if {
	some a in player_ids
	some b in data.shardmatch.blocklist[a]
	b in player_ids
	pair := sort([a, b])
	msg := sprintf("players %s and %s are blocklisted from sharing a match", pair)
}
