package shardmatch

import input.facts

# PARTY_SPLIT: players who queued together (same non-empty party_id) play on
# the same team. (That a party is never split across *matches* is the lease
# table's job: a player can only be in one match at a time.)
violation contains denial("PARTY_SPLIT", msg, members) if {
	some party, on in facts.parties
	count(on) > 1
	members := sort([p.player_id | p := players[_]; p.attributes.party_id == party])
	msg := sprintf("party %q is split across teams %v", [party, sort([n | some i in on; n := i + 1])])
}
