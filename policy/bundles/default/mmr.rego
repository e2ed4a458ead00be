package shardmatch

import input.facts
import input.queue

# MMR_SPREAD: the highest and the lowest rated player of the match are at most
# max_mmr_spread apart. The denial names the players at both extremes.
violation contains mmr_spread_denial if facts.mmr_spread > queue.max_mmr_spread

mmr_spread_denial := denial("MMR_SPREAD", msg, ids) if {
	lo := facts.mmr_min
	hi := facts.mmr_max
	ids := sort([p.player_id | p := players[_]; p.attributes.mmr in {lo, hi}])
	msg := sprintf("MMR spread %d exceeds max_mmr_spread %d (lowest %d, highest %d)", [facts.mmr_spread, queue.max_mmr_spread, lo, hi])
}

# TEAM_MMR_GAP: the teams' average MMRs are at most max_team_mmr_gap apart
# (facts.team_mmr_gap: the highest team average minus the lowest; empty
# teams, which TEAM_SIZE reports, have no average).
violation contains team_mmr_gap_denial if facts.team_mmr_gap > queue.max_team_mmr_gap

team_mmr_gap_denial := denial("TEAM_MMR_GAP", msg, []) if {
	shown := [sprintf("team %d: %d", [i + 1, round(facts.team_mmr_sums[i] / n)]) | some i, n in facts.team_players; n > 0]
	msg := sprintf("average MMR gap between teams is %d, max_team_mmr_gap is %d (%s)", [round(facts.team_mmr_gap), queue.max_team_mmr_gap, concat(", ", shown)])
}
