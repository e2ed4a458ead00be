# Fixtures shared by the default bundle's tests. Nothing here is a test: rule
# names that start with test_ are tests, these do not.
package shardmatch_test

import data.shardmatch

# pl is a player from eu-west with 30ms to eu-west.
pl(id, shard, mmr) := {
	"player_id": id,
	"shard_id": shard,
	"attributes": {
		"mmr": mmr,
		"region": "eu-west",
		"party_id": "",
		"latency_ms": {"eu-west": 30},
		"extra": {},
	},
}

# attr returns p with one attribute replaced. (object.union merges nested
# objects, so the old value is removed first.)
attr(p, k, v) := object.union(object.remove(p, {"attributes"}), {"attributes": object.union(object.remove(p.attributes, {k}), {k: v})})

team(ps) := {"players": ps}

proposal(m, ts) := {
	"proposal_id": "rego-test",
	"mode": m,
	"teams": ts,
	"match_ttl_ms": 60000,
	"prepare_timeout_ms": 0,
	"metadata": {},
}

# in_region returns the proposal with metadata.region set.
in_region(p, r) := object.union(p, {"metadata": {"region": r}})

fixture_shards := {
	"s1": {"shard_id": "s1", "region": "eu-west", "capacity": 5000, "labels": {}, "protocol_version": 1, "state": "ACTIVE"},
	"s2": {"shard_id": "s2", "region": "eu-west", "capacity": 5000, "labels": {}, "protocol_version": 1, "state": "ACTIVE"},
	"s3": {"shard_id": "s3", "region": "us-east", "capacity": 5000, "labels": {}, "protocol_version": 1, "state": "ACTIVE"},
}

# input_for is the input document the engine builds for p: the queue config
# comes from the bundle's data, as the engine copies it, and the facts are
# computed as the engine computes them.
input_for(p) := with_facts({"proposal": p, "queue": data.shardmatch.queues[p.mode], "shards": fixture_shards})

# input_with_queue is input_for with a hand-written queue config.
input_with_queue(p, q) := with_facts({"proposal": p, "queue": shardmatch.queue_config(q), "shards": fixture_shards})

# with_facts adds input.facts to a document, unless it is malformed.
with_facts(doc) := object.union(doc, {"facts": f}) if {
	f := shardmatch.computed_facts with input as doc
}

with_facts(doc) := doc if {
	not shardmatch.computed_facts with input as doc
}

result(p) := r if {
	r := shardmatch.match with input as input_for(p)
}

codes(r) := {d.code | some d in r.deny}

# players_of lists the players of the denials with code c.
players_of(r, c) := {id | some d in r.deny; d.code == c; some id in d.players}

# A 5v5 that every rule accepts: 4 players from s1, 3 from s2, 3 from s3.
good_5v5 := proposal("5v5", [
	team([pl("a1", "s1", 1500), pl("a2", "s1", 1520), pl("a3", "s2", 1480), pl("a4", "s2", 1550), pl("a5", "s3", 1490)]),
	team([pl("b1", "s1", 1510), pl("b2", "s1", 1530), pl("b3", "s2", 1470), pl("b4", "s3", 1540), pl("b5", "s3", 1500)]),
])

good_duel := proposal("duel", [team([pl("d1", "s1", 2000)]), team([pl("d2", "s3", 2100)])])

# replace_player swaps the player at teams[t].players[i] for np.
replace_player(p, t, i, np) := object.union(p, {"teams": [nt |
	some j, tm in p.teams
	nt := team_with(tm, j == t, i, np)
]})

team_with(tm, false, _, _) := tm

team_with(tm, true, i, np) := {"players": [x |
	some k, q in tm.players
	x := pick(k == i, q, np)
]}

pick(false, q, _) := q

pick(true, _, np) := np
