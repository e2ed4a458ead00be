package shardmatch

# SHARD_SHARE: no shard supplies more than max_shard_share (a fraction, 0 to 1)
# of the match's players, so that cross-shard play stays cross-shard.
violation contains denial("SHARD_SHARE", msg, ids) if {
	limit := queue.max_shard_share
	total := count(players)
	total > 0
	some s, ps in shard_players
	n := count(ps)
	n / total > limit
	ids := sort(ps)
	msg := sprintf("shard %s supplies %d of %d players (%d%%), mode %q allows at most %d%%", [s, n, total, round((100 * n) / total), mode, round(100 * limit)])
}

# shard_players maps a shard to the ids of the players it supplies.
shard_players[s] contains p.player_id if {
	some p in players
	s := p.shard_id
}
