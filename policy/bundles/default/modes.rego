package shardmatch

import input.proposal
import input.queue

# queues are the mode configs as the rules read them (input.queue): each of
# data.shardmatch.modes with its defaults filled in, so that a rule compares a
# fact with a knob and nothing else. The engine evaluates queues once, when the
# bundle loads (so it may read data only), and copies the proposal's mode's
# entry into the input; a mode without an entry is unknown.
#
#	min_team_size, max_team_size  team_size sets both; 1 and 1000000 without
#	                                either
#	region_rules                   whether the region rules apply: the mode sets
#	                                max_latency_ms or regions, or
#	                                allow_cross_region false
queues[name] := queue_config(cfg) if some name, cfg in data.shardmatch.modes

# queue_config is one mode's config with its defaults filled in.
queue_config(cfg) := object.union(cfg, {
	"min_team_size": object.get(cfg, "min_team_size", object.get(cfg, "team_size", 1)),
	"max_team_size": object.get(cfg, "max_team_size", object.get(cfg, "team_size", 1000000)),
	"region_rules": region_rules(cfg),
})

default region_rules(_) := false

region_rules(cfg) if cfg.max_latency_ms

region_rules(cfg) if cfg.regions

region_rules(cfg) if cfg.allow_cross_region == false

# UNKNOWN_MODE: the proposal names a mode the bundle has no config for
# (data.shardmatch.modes has no such key). Every rule that reads the mode's
# config is silent then, so this denial is what stops the proposal.
violation contains unknown_mode_denial if not queue

unknown_mode_denial := denial("UNKNOWN_MODE", msg, []) if {
	msg := sprintf("mode %q is not configured in this policy bundle (data.shardmatch.modes)", [proposal.mode])
}

# MODE_CLOSED: an operator closed the mode for maintenance (knob: closed,
# closed_message).
violation contains mode_closed_denial if queue.closed == true

mode_closed_denial := denial("MODE_CLOSED", msg, []) if {
	reason := object.get(queue, "closed_message", "closed for maintenance")
	msg := sprintf("mode %q is closed: %s", [proposal.mode, reason])
}
