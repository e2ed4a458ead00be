package shardmatch

# MMR_SPREAD: the highest and the lowest rated player of the match are at most
# max_mmr_spread apart. The denial names the players at both extremes.
violation contains denial("MMR_SPREAD", msg, ids) if {
	limit := queue.max_mmr_spread
	count(players) > 1
	mmrs := [p.attributes.mmr | some p in players]
	lo := min(mmrs)
	hi := max(mmrs)
	hi - lo > limit
	ids := sort([p.player_id | some p in players; p.attributes.mmr in {lo, hi}])
	msg := sprintf("MMR spread %d exceeds max_mmr_spread %d (lowest %d, highest %d)", [hi - lo, limit, lo, hi])
}

# TEAM_MMR_GAP: the teams' average MMRs are at most max_team_mmr_gap apart.
violation contains denial("TEAM_MMR_GAP", msg, []) if {
	limit := queue.max_team_mmr_gap
	count(team_avg_mmr) > 1
	avgs := [a | some a in team_avg_mmr]
	gap := max(avgs) - min(avgs)
	gap > limit
	shown := [sprintf("team %d: %d", [i + 1, round(a)]) | some i, a in team_avg_mmr]
	msg := sprintf("average MMR gap between teams is %d, max_team_mmr_gap is %d (%s)", [round(gap), limit, concat(", ", shown)])
}

# team_avg_mmr maps a team's index to its players' average MMR; empty teams,
# which TEAM_SIZE reports, have none.
team_avg_mmr[i] := sum(mmrs) / count(mmrs) if {
	some i, team in teams
	mmrs := [p.attributes.mmr | some p in team.players]
	count(mmrs) > 0
}
