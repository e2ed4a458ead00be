package shardmatch

import input.facts
import input.proposal
import input.queue

# The match's region is proposal.metadata.region when the proposer set it;
# otherwise the one region every player comes from (facts.regions: a player's
# region is attributes.region, or their shard's region when that is empty).
match_region := proposal.metadata.region if proposal.metadata.region != ""
else := r if {
	object.get(proposal.metadata, "region", "") == ""
	count(facts.regions) == 1
	some r in facts.regions
}

# REGION: the match must have a region ...
violation contains no_region_denial if {
	not match_region
	queue.region_rules == true # modes that say anything about regions or latency
}

no_region_denial := denial("REGION", msg, []) if {
	msg := sprintf("the match has no region: set proposal metadata \"region\" or propose players of one region (players come from %v)", [sort(facts.regions)])
}

# ... the mode must be offered there (knob: regions) ...
violation contains region_not_offered_denial(r) if {
	allowed := queue.regions
	r := match_region
	not r in allowed
}

region_not_offered_denial(r) := denial("REGION", msg, []) if {
	msg := sprintf("mode %q is not offered in region %q (regions: %s)", [proposal.mode, r, concat(", ", queue.regions)])
}

# ... and, when allow_cross_region is false, every player must be from it.
violation contains cross_region_denial(p, r) if {
	queue.allow_cross_region == false
	r := match_region
	not single_region(r)
	p := players[_]
	not from_region(p, r)
}

cross_region_denial(p, r) := denial("REGION", msg, [p.player_id]) if {
	msg := sprintf("player %s is from region %q, the match is in %q and mode %q does not allow cross-region play", [p.player_id, region_or_unknown(p), r, proposal.mode])
}

single_region(r) if {
	facts.regions == {r}
	facts.regionless == 0
}

from_region(p, r) if player_region(p) == r

region_or_unknown(p) := player_region(p)

region_or_unknown(p) := "unknown" if not has_region(p)

# LATENCY: every player's measured round trip to the match's region is at most
# max_latency_ms. A player with no measurement for the region is denied too:
# unknown latency is not low latency.
violation contains latency_denial(p, ms, r) if {
	limit := queue.max_latency_ms
	r := match_region
	not latency_ok(r, limit)
	p := players[_]
	ms := object.get(p.attributes.latency_ms, r, null)
	not within(ms, limit)
}

latency_denial(p, ms, r) := denial("LATENCY", latency_message(p.player_id, ms, r, queue.max_latency_ms), [p.player_id])

# latency_ok: everyone measured r (facts.latency_max_all has only such
# regions), and the worst is within the limit. (Written as a function of r:
# `not x[r] <= limit` with an undefined x[r] is not true in Rego, so the lookup
# must happen inside.)
latency_ok(r, limit) if facts.latency_max_all[r] <= limit

within(ms, limit) if {
	is_number(ms)
	ms <= limit
}

latency_message(id, null, r, _) := sprintf("player %s has no latency measurement to %s", [id, r])

latency_message(id, ms, r, limit) := sprintf("player %s has %dms to %s, mode %q allows %dms", [id, ms, r, proposal.mode, limit]) if ms != null
