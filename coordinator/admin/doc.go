// Package admin is a coordinator node's operator surface: the per-node admin HTTP API,
// the operator console it serves at /ui/ (ui.go, embedded assets), its Prometheus
// metrics, and the clients behind the CLI (APIClient: any node, following NOT_LEADER's
// leader_admin_url once; StatusClient and the table printer of `coordinator status`).
//
// One Server serves one coordinator.Node. Reads come in two strengths: GET
// /v1/txns/{id} is linearizable (Node.Status, leader only; a follower answers
// NOT_LEADER with the leader's id and admin URL unless the caller asks for
// ?stale=true), while the listings (/v1/txns, /v1/leases/{player}, /v1/shards,
// /v1/stats, /v1/policy) read this node's FSM as applied so far. /v1/deadletters is the
// leader's (it knows the delivery attempts), or any node's with ?stale=true (attempts
// -1). Operator actions need the operate role; with no token configured they are
// refused unless the server was built AllowUnauthenticated for development (`coordinator
// dev`). Every route is a Path constant (paths.go); PathFor fills its parameters.
//
// NOT_LEADER names the leader's admin base URL (leader_admin_url): the node's own
// Config.AdvertiseURL when it leads, else the AdminURL of the leader's answer to
// Config.LeaderIndex (serve: natsapi's leader-index request, which the leader answers
// with its --admin-advertise-url).
//
// Endpoints:
//
//	GET    /healthz                 200 while the process serves HTTP
//	GET    /readyz                  200 when caught up with the leader (see Readiness)
//	GET    /metrics                 Prometheus text exposition
//	GET    /v1/status               Status: role, leader, term, indexes, peers, counts
//	GET    /v1/txns                 txns in log order, paged: state = preparing | committed |
//	                                aborted | undelivered | stuck | all (default: unfinished),
//	                                since, shard, limit, cursor (next_cursor), older_than (stuck)
//	GET    /v1/txns/{id}            a txn by txid or proposal id; ?stale=true reads locally
//	POST   /v1/txns/{id}/abort      force-abort a PREPARING txn            (auth)
//	POST   /v1/txns/{id}/redrive    re-send the decision to unacked shards now (auth)
//	POST   /v1/txns/{id}/resolve    body {shard}: ack for a DISABLED shard (auth)
//	GET    /v1/deadletters          decisions unacked for older_than (1m) or of a disabled shard
//	GET    /v1/leases/{player}      the player's lease
//	GET    /v1/shards               the shard registry
//	POST   /v1/shards/{id}/state    body {state: active|draining|disabled} (auth)
//	GET    /v1/stats                this node's decisions by outcome and reason, policy counts, in doubt
//	GET    /v1/policy               the policy revision in force and the latest denials
//	GET    /v1/audit                the latest records of the audit trail
//	GET    /ui/                     the operator console (no token: its API calls carry them)
//	POST   /v1/leader/transfer      hand leadership over, body {id, addr} optional (auth)
//	POST   /v1/voters               add a voter, body {id, addr}           (auth)
//	DELETE /v1/voters/{id}          remove a server                        (auth)
//	GET    /v1/debug/state          the whole FSM state (protojson), one consistent snapshot
//	GET    /v1/snapshot             a fresh Raft snapshot as a snapshot file (octet-stream),
//	                                leader only unless ?stale=true                      (auth)
//	POST   /v1/snapshot/restore     restore a snapshot file onto the cluster, leader only;
//	                                ?force=true, ?min_index=N                           (auth)
//	GET    /v1/fault                fault-injection state        (only with Config.Faults)
//	POST   /v1/fault/clock          step/skew the process clock  (only with Config.Faults; auth if a token is set)
//	POST   /v1/fault/transport      duplicate/reorder shares     (only with Config.Faults; auth if a token is set)
//
// Readiness. The leader is ready once it has finished taking over (barrier and
// recovery). A follower is ready when it knows a leader and its applied index is within
// Config.MaxApplyLag of the leader's commit index, which it learns from
// Config.LeaderIndex (in `coordinator serve`, a NATS request only the leading node
// answers, cached for a second): its own commit index is no measure, since a restarted
// follower hears the leader's heartbeats (which carry no commit index) long before the
// entries it missed. /readyz, /v1/status and the shardmatch_ready and shardmatch_raft_lag
// gauges all report the same verdict, with leader_commit_index and lag.
//
// Errors are JSON, {"error": {"code", "message", "leader_id", ...}}, with the codes of
// coordinator.APIError (INVALID 400, NOT_FOUND 404, NOT_LEADER 421 when the leader is
// known and 503 when it is not, CONFLICT 409, UNAVAILABLE 503, OUTCOME_UNKNOWN 504) and
// the HTTP ones this layer adds (UNAUTHENTICATED 401, FORBIDDEN 403,
// METHOD_NOT_ALLOWED 405, NOT_IMPLEMENTED 501, INTERNAL 500).
//
// Snapshots (snapshot.go; the file format is coordinator/snapshotfile.go: magic,
// format version, Raft metadata as JSON, data, SHA-256). GET /v1/snapshot needs the
// token too: it is the whole state. A restore replaces transactions, leases and the
// shard registry with the snapshot's, so fencing tokens and leases go back in time
// while shards hold newer tokens; it is meant for disaster recovery into a cluster
// whose every node lost its data, or a fresh one. The file is spooled to the data
// directory and verified whole before anything changes: a defect answers INVALID 400
// with field snapshot.magic, .version, .metadata, .truncated, .checksum, .size,
// .trailing or .state. A snapshot older than the applied state of a cluster that has
// ever granted a lease or holds a transaction answers CONFLICT 409 unless force=true.
// Tokens stay monotonic within the cluster restored into (Raft places the restored
// state past both its own last index and the snapshot's); min_index lifts that floor
// above a lost cluster's last index. The leader pauses its duties for the restore and
// then recovers the restored transactions as after a failover: PREPARING ones are
// presumed aborted, decided ones redelivered.
//
// What it must never do: change replicated state except through the Node's and
// Raft's own calls, block the FSM (Metrics.ObserveDecision runs under the FSM lock and
// only touches atomics), or hold a lock across a Raft call.
package admin
