package shardmatch

# The match's region is proposal.metadata.region when the proposer set it;
# otherwise the one region every player comes from. A player's region is
# attributes.region, or their shard's region when that is empty.
match_region := requested_region

match_region := r if {
	not requested_region
	count(player_regions) == 1
	some r in player_regions
}

requested_region := r if {
	r := input.proposal.metadata.region
	r != ""
}

player_regions := {r | some p in players; r := player_region(p)}

player_region(p) := p.attributes.region if p.attributes.region != ""

player_region(p) := shards[p.shard_id].region if {
	p.attributes.region == ""
	shards[p.shard_id].region != ""
}

from_region(p, r) if player_region(p) == r

has_region(p) if player_region(p)

region_or_unknown(p) := player_region(p)

region_or_unknown(p) := "unknown" if not has_region(p)

# Region rules apply to modes that say anything about regions or latency.
region_rules_apply if queue.max_latency_ms

region_rules_apply if queue.regions

region_rules_apply if queue.allow_cross_region == false

# REGION: the match must have a region ...
violation contains denial("REGION", msg, []) if {
	region_rules_apply
	not match_region
	msg := sprintf("the match has no region: set proposal metadata \"region\" or propose players of one region (players come from %v)", [sort(player_regions)])
}

# ... the mode must be offered there (knob: regions) ...
violation contains denial("REGION", msg, []) if {
	allowed := queue.regions
	r := match_region
	not r in allowed
	msg := sprintf("mode %q is not offered in region %q (regions: %s)", [mode, r, concat(", ", allowed)])
}

# ... and, when allow_cross_region is false, every player must be from it.
violation contains denial("REGION", msg, [p.player_id]) if {
	queue.allow_cross_region == false
	r := match_region
	some p in players
	not from_region(p, r)
	pr := region_or_unknown(p)
	msg := sprintf("player %s is from region %q, the match is in %q and mode %q does not allow cross-region play", [p.player_id, pr, r, mode])
}

# LATENCY: every player's measured round trip to the match's region is at most
# max_latency_ms. A player with no measurement for the region is denied too:
# unknown latency is not low latency.
violation contains denial("LATENCY", msg, [p.player_id]) if {
	limit := queue.max_latency_ms
	r := match_region
	some p in players
	ms := p.attributes.latency_ms[r]
	ms > limit
	msg := sprintf("player %s has %dms to %s, mode %q allows %dms", [p.player_id, ms, r, mode, limit])
}

violation contains denial("LATENCY", msg, [p.player_id]) if {
	queue.max_latency_ms
	r := match_region
	some p in players
	not p.attributes.latency_ms[r]
	msg := sprintf("player %s has no latency measurement to %s", [p.player_id, r])
}
