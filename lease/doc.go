// Package lease holds shardmatch's player leases: which transaction holds each player,
// under which fencing token, in which state, for how long.
//
// A lease says "this player belongs to transaction txid". It is granted RESERVED when a
// match's transaction begins (all of the match's players or none), turns ACTIVE when the
// transaction commits, is renewed by the match host while the match runs, and disappears
// on abort, on match end, or when the leader that measures it decides it has expired.
// Every grant carries a fencing token, strictly increasing per player for the life of the
// table, so a shard can refuse a write from a holder that has since been superseded.
//
// The package has three layers:
//
//   - Table is the pure, deterministic lease table. It is embedded in the coordinator's
//     Raft FSM, so it must be a deterministic function of its inputs: it never reads a
//     clock, starts no goroutines, takes no locks (the caller serialises), and every list
//     it returns is sorted, never in map order. Expiry is an input to it (Expire with the
//     renew sequence the leader measured), never a decision it makes.
//   - Store is the contract a lease backend satisfies, checked by the conformance suite in
//     package leasetest. MemStore implements it in process, and package
//     lease/etcdlease on etcd, for several coordinator groups sharing one player table;
//     the coordinator's FSM embeds a Table directly.
//   - MemStore is a real in-process Store: a Table behind a mutex, with expiry measured on
//     an injected clock.Clock's monotonic face.
//
// What this package must never do: use the wall clock (clock.Clock.Now, time.Now) in a
// safety decision. Expiry is measured on a monotonic clock with a margin for a clock rate
// error ρ, so that a lease is never taken from its holder before ttl·(1−ρ) of real time
// since its last Activate or Renew (invariant I7), and a node whose wall clock jumps by
// hours behaves exactly the same. It must also never import NATS, Raft or any other
// shardmatch package but clock and internal/ptrindex (a hash index).
package lease
