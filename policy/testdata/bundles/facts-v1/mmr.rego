package shardmatch

import input.facts
import input.queue

# MMR_SPREAD: the highest and the lowest rated player of the match are at most
# max_mmr_spread apart. The denial names the players at both extremes.
violation contains denial("MMR_SPREAD", msg, ids) if {
	limit := queue.max_mmr_spread
	lo := facts.mmr_min
	hi := facts.mmr_max
	hi - lo > limit
	ids := sort([p.player_id | p := players[_]; p.attributes.mmr in {lo, hi}])
	msg := sprintf("MMR spread %d exceeds max_mmr_spread %d (lowest %d, highest %d)", [hi - lo, limit, lo, hi])
}

# TEAM_MMR_GAP: the teams' average MMRs are at most max_team_mmr_gap apart.
# (Empty teams, which TEAM_SIZE reports, have no average.)
violation contains denial("TEAM_MMR_GAP", msg, []) if {
	limit := queue.max_team_mmr_gap
	avgs := [a | t := facts.teams[_]; t.players > 0; a := t.mmr_sum / t.players]
	gap := max(avgs) - min(avgs)
	gap > limit
	shown := [sprintf("team %d: %d", [i + 1, round(t.mmr_sum / t.players)]) | some i, t in facts.teams; t.players > 0]
	msg := sprintf("average MMR gap between teams is %d, max_team_mmr_gap is %d (%s)", [round(gap), limit, concat(", ", shown)])
}
