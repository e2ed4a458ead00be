package shardmatch

# PARTY_SPLIT: players who queued together (same non-empty party_id) play on
# the same team. (That a party is never split across *matches* is the lease
# table's job: a player can only be in one match at a time.)
violation contains denial("PARTY_SPLIT", msg, members) if {
	some party, idx in party_teams
	count(idx) > 1
	members := sort([p.player_id | some p in players; p.attributes.party_id == party])
	msg := sprintf("party %q is split across teams %v", [party, sort([n | some i in idx; n := i + 1])])
}

# party_teams maps a party to the set of team indexes its members are on.
party_teams[party] contains i if {
	some i, team in teams
	some p in team.players
	party := p.attributes.party_id
	party != ""
}
