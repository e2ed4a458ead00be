package shardmatch

import input.proposal
import input.queue

# UNKNOWN_MODE: the proposal names a mode the bundle has no config for
# (data.shardmatch.modes has no such key). Every rule that reads the mode's
# config is silent then, so this denial is what stops the proposal.
violation contains unknown_mode_denial if known_mode == false

default known_mode := false

known_mode if is_object(queue)

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
