package shardmatch

import input.facts
import input.proposal
import input.queue

# SHARD_SHARE: no shard supplies more than max_shard_share (a fraction, 0 to 1)
# of the match's players, so that cross-shard play stays cross-shard.
violation contains denial("SHARD_SHARE", msg, ids) if {
	limit := queue.max_shard_share
	total := facts.players
	total > 0
	most := limit * total # one multiplication, rather than a division per shard
	max([n | n := facts.shard_players[_]]) > most
	some s, n in facts.shard_players
	n > most
	ids := sort([p.player_id | p := players[_]; p.shard_id == s])
	msg := sprintf("shard %s supplies %d of %d players (%d%%), mode %q allows at most %d%%", [s, n, total, round((100 * n) / total), proposal.mode, round(100 * limit)])
}
