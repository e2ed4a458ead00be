// Package admin is a coordinator node's operator surface: the per-node admin HTTP API,
// its Prometheus metrics, and the client and table printer behind `coordinator status`.
//
// One Server serves one coordinator.Node. Reads come in two strengths: GET
// /v1/txns/{id} is linearizable (Node.Status, leader only; a follower answers
// NOT_LEADER with the leader's id unless the caller asks for ?stale=true), while the
// listings (/v1/txns, /v1/leases/{player}, /v1/shards) read this node's FSM as applied
// so far. Operator actions (leadership transfer, voter changes, force-abort) need a
// bearer token; with no token configured they are refused unless the server was built
// AllowUnauthenticated for development.
//
// Endpoints:
//
//	GET    /healthz                 200 while the process serves HTTP
//	GET    /readyz                  200 when a leader is known and the FSM has caught up
//	GET    /metrics                 Prometheus text exposition
//	GET    /v1/status               Status: role, leader, term, indexes, peers, counts
//	GET    /v1/txns?state=S&limit=N unfinished txns (S = preparing | undelivered), local
//	GET    /v1/txns/{id}            a txn by txid or proposal id; ?stale=true reads locally
//	POST   /v1/txns/{id}/abort      force-abort a PREPARING txn            (auth)
//	GET    /v1/leases/{player}      the player's lease
//	GET    /v1/shards               the shard registry
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
