// Package history is the recorded history of a shardmatch run and the checkers that
// decide whether the run kept invariants I1–I7 (docs/chaos.md, "The invariants").
//
// The in-process cluster tests, the chaos runner and offline analysis of JSON files
// all use it, so it is pure: it imports only the standard library, never NATS, Raft
// or another shardmatch package, and it never reads a clock. Every time in a History
// is a duration on ONE reference monotonic clock of the test or runner (the "true"
// time), never a node's own, possibly skewed or drifting, clock.
//
// # Recording
//
// A Recorder (safe for concurrent use) takes an injected now func() time.Duration,
// typically a reference clock.Clock's Mono, and collects:
//
//   - Op: one client call. Invoke stamps the start and returns a *Call whose Return
//     stamps the end and the result: "committed" | "aborted" answer a Propose; "ok"
//     (applied) | "fail" (definitely not applied) a Renew or Release; "unknown" means
//     timeout or indeterminate (maybe applied). A call that never returns keeps
//     Returned=false. Retries of a proposal are separate Ops with the same ProposalID.
//   - ShardEvent: an effect a shard applied (prepared = voted YES and journaled;
//     voted_no; committed; aborted, including an abort that arrives before any Prepare
//     and leaves a tombstone). Seq orders one shard's events as the shard applied them;
//     the shard must record under its own lock. Tokens are the fencing tokens applied.
//   - LeaseEvent: a lease change one coordinator node's FSM applied from the log
//     (granted = RESERVED on Begin, activated on commit, renewed, released, expired,
//     freed on abort), with the Raft Index of its entry. Several events may share an
//     index (a batched entry); they keep their recorded order. A node records in
//     apply order, only changes it actually applied (a renew of an expired lease
//     records nothing), and a "restored" marker (Index = the snapshot's last index)
//     whenever it restores or installs a snapshot, including at startup. Empty
//     Players means every player the txn still holds.
//   - Final: after the run, each node's FSM (txns, lease table, AppliedIndex, one
//     consistent snapshot) and each shard's journal. Compacted txns are simply absent.
//     Settled says Final was taken after faults healed and the settle time passed.
//
// Token 0 means "not recorded" and is never compared.
//
// # JSON
//
// History, Report and every record type have snake_case json tags; durations are
// integer nanoseconds in fields suffixed _ns ("invoke_ns", "at_ns", "ttl_ns").
// WriteJSON stamps "version" (FormatVersion); ReadJSON refuses any other version with
// ErrVersion. Encoding, decoding and re-encoding is lossless.
//
// # The canonical lease log
//
// The lease checks need one log. Each node's events are split into applications
// (consecutive events of one index, or a restore marker); a later application of an
// index the node already applied is a replay after restart and must equal the first.
// The canonical log takes each index from the longest node log that holds it (highest
// last index, then most entries), so lagging nodes and nodes that installed a
// snapshot still leave a complete log when any node saw everything. Each canonical
// event's At is the earliest At among the nodes that applied that same entry. It is
// replayed once through an independent lease model (a holder per player) to get the
// lease intervals [grant index, end index), the players an event affected, and the
// model at every restore marker and every node's AppliedIndex.
//
// # The checks
//
// Check runs all of them; CheckLog and CheckI1…CheckI7 run one each. A Violation
// names its invariant and, where known, txid, player, shard and node; findings that
// several nodes share are merged into one. Report.Notes lists what could not be
// checked (no lease events, not settled, expiries with no bound) — a skipped check
// proves nothing and the report says so.
//
// LOG, log consistency. At every index, every node that applied it applied the same
// events (kind, txid, players with tokens, ttl, renew_seq; not node or time). Within
// a node, indexes increase except right after a restore marker, and a node skips an
// index that has lease events in the canonical log only if a restore marker covers
// it. So every node's sequence is a prefix of the canonical one up to snapshot
// installs. It cannot see entries that changed no lease (acks, failed Begins), nor a
// divergence that every node shares.
//
// I1, atomicity. From shard events and final journals: no txid is committed at one
// shard and aborted at another; no shard commits a txid it never prepared, nor one a
// shard voted NO on without ever preparing it; a txid ABORTED on any node is committed
// at no shard. If settled: a txid COMMITTED on any node is committed at every shard
// of its TxnFinal.Shards, and no shard journal still holds a txid prepared (in doubt).
// A txn compacted from every node is checked only through its shard events and, in
// I3, through the proposer's answer.
//
// I2, no double booking. Every node's own applications are replayed through a fresh
// lease model (reset to the canonical model at each restore marker): a grant to a
// player with a live holder, or an activation, renewal, release, expiry or free of a
// lease the txn does not hold, is a violation. Each node's final lease table must not
// hold a player twice and must equal the canonical model at its AppliedIndex. Every
// (txid, player) a shard committed must have been granted in the canonical log, and no
// player may be committed at shards for two txns whose lease intervals overlap. This
// is order in the log, which is what makes a lease exclusive; real-time overlap of
// the game servers' use of players is outside the history. The final-table and
// never-granted checks need a complete log: they are skipped (with a note) if every
// node restored a snapshot.
//
// I3, durable decisions. A proposal id maps to one txid across ops and node finals,
// and its attempts never got both committed and aborted. Nodes never disagree on a
// txn's outcome. For every answer given to a proposer: every node holding the txn
// holds that outcome (after settle, also not undecided); the lease log did not free
// the leases of a committed answer nor activate those of an aborted one; no shard
// committed an aborted answer; and if settled every shard of a committed answer
// applied the commit. An "unknown" answer promises nothing and is not checked here.
//
// I4, fencing. In the canonical log each grant's token for a player is above every
// earlier grant's. Tokens told to proposers and tokens shards prepared or committed
// with equal the granted ones. Per shard, in Seq order, a committed token for a player
// is never below one already applied, and one token never commits two txids. It
// cannot see writes to player state that bypass the shard's fence.
//
// I5, termination (settled histories only). No node holds a txn PREPARING or decided
// but not DONE (acked by every shard); every op returned; every propose answered
// "unknown" was resolved: another attempt of its proposal id got a definite answer,
// or a txn of it is decided on a node, in the lease log or at a shard. So a workload
// must retry unknown proposals until they are answered. A proposal lost before intake
// and never retried therefore counts as a violation. Unknown renews and releases
// are not required to resolve.
//
// I6, exactly-once effect. Per shard and txid: at most one prepared, one committed and
// one aborted event; never both committed and aborted (events or journal); no prepare
// after its abort (the tombstone must win); no NO vote after a journaled YES; and no
// final journal holds a txid in two states. A NO followed by a YES is allowed: a NO
// is not journaled, so a restarted shard may prepare a redelivered Prepare. Effects a
// shard applies without recording them are invisible.
//
// I7, no early expiry. For every expiry of (txid, player) in the canonical log at time
// At (earliest node), let start be the latest of: the Invoke of the first attempt of
// the txn's proposal (a retry may be answered with a decision taken before it was
// invoked); the Invoke of every renew that returned "ok" by At; and, for every
// renewal the log applied before the expiry, the earliest Invoke among the renew calls
// that could have caused it (invoked by its At, not returned before it, not failed).
// The expiry is a violation if At < start + ttl·(1−ρ), with ttl from the lease's
// latest grant, activation or renewal (else the proposal's TTL) and ρ = History.Rho.
// Every term is an Invoke because the leader can only count from a moment after the
// call began, so a correct system is never flagged; an "unknown" renew counts only
// through a renewal the log shows, because a lost renew extends nothing. A renewal or
// activation of a lease after it expired is also a violation. Limits: a renewal with
// a late-returning cause is bounded by its earliest candidate, so a slightly early
// expiry can go unseen; expiries with no TTL or no recorded op are skipped and noted.
//
// # What the package must never do
//
// Import anything but the standard library; read a clock; modify the History it
// checks; report a violation for a correct history. Every checker is shown to catch
// deliberately broken histories in this package's tests (hand-built cases and a table
// of mutations applied to histories generated by a simulated correct coordinator).
package history
