package shardmatch

import input.facts
import input.proposal
import input.queue

# SHARD_SHARE: no shard supplies more than max_shard_share (a fraction, 0 to 1)
# of the match's players, so that cross-shard play stays cross-shard. The
# largest share (facts.shard_share_max: the largest supplier's players over
# the match's, absent without players) says whether any shard is over; only
# then are the shards walked.
violation contains shard_share_denial(s, n) if {
	facts.shard_share_max > queue.max_shard_share
	some s, n in facts.shard_players
	n / facts.players > queue.max_shard_share
}

shard_share_denial(s, n) := denial("SHARD_SHARE", msg, ids) if {
	total := facts.players
	ids := sort([p.player_id | p := players[_]; p.shard_id == s])
	msg := sprintf("shard %s supplies %d of %d players (%d%%), mode %q allows at most %d%%", [s, n, total, round((100 * n) / total), proposal.mode, round(100 * queue.max_shard_share)])
}
