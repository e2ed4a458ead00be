// Package etcdlease is a lease.Store on etcd, so that several coordinator groups can
// share one table of player leases. It passes the leasetest conformance suite against
// an embedded etcd server.
//
// # Key layout
//
// Every key lives under Options.Prefix (default "/shardmatch/leases"):
//
//	<prefix>/players/<player>  {"v":1,"tx":txid,"st":state,"ttl":ns}
//	<prefix>/txns/<txid>       {"v":1,"p":[sorted players],"st":state,"ttl":ns}
//
// The values are small JSON records; ttl is the TTL the caller asked for, in
// nanoseconds. The fencing token is not in the value: it is the revision of the Txn
// that granted the lease, which etcd keeps as each key's CreateRevision (an update
// such as Activate keeps it). etcd's revision is one counter for the whole cluster
// and never goes back, so a later grant of a player always carries a higher token
// (I4), across stores, restarts and leader changes. (Restoring etcd from a snapshot
// keeps revisions; do not restore one without --bump-revision past every token
// shards may have seen.)
//
// All keys of one grant are attached to one etcd lease: the store's owner session
// while RESERVED, a per-match lease once ACTIVE. etcd deletes a lease's keys in one
// step when it ends, so a grant never half-expires.
//
// # Operations and round trips
//
//   - Acquire: one round trip. A single Txn compares CreateRevision == 0 on the txid
//     key and every player key; its success branch puts them all on the owner session,
//     its failure branch reads them all in the same revision, so the returned
//     *lease.LeasedError names exactly the busy players and their holders, and nothing
//     changed. Arguments are validated first; bad input never reaches etcd.
//   - Activate: a read of the txid key, a Grant of a fresh lease of the match TTL, one
//     Txn (guarded by the txid key's ModRevision and the players' CreateRevision) that
//     moves every key to it as ACTIVE, and a KeepAliveOnce so the TTL runs from just
//     before Activate returns rather than from the Grant.
//   - Renew: a read of the txid key and one KeepAliveOnce on its lease; etcd saying
//     the lease does not exist is lease.ErrNotFound (the holder has lost it).
//   - Release: a read and one guarded Txn deleting every key, then a best-effort
//     Revoke of an ACTIVE match's now keyless lease (never of an owner session).
//   - Get: one read. RenewSeq is always 0: a renew is a keepalive, not a write.
//   - Adopt (beyond lease.Store): a read and one guarded Txn that moves a RESERVED
//     grant onto this store's session, keeping its token: a new coordinator leader
//     takes over the reservations its predecessor's session holds.
//
// Each round trip is bounded by Options.OpTimeout; the caller's ctx, if it ends
// sooner, wins and is returned (wrapped).
//
// # Reservations and the owner session
//
// A RESERVED lease must not expire while its transaction is undecided, so it is not
// timed: it is attached to the store's owner session, an etcd lease of
// Options.SessionTTL that the store keeps alive (the client sends a keepalive every
// SessionTTL/3). Close revokes the session, handing back the store's reservations at
// once. Adopt moves a reservation from another store's session to this one's, so a
// grant can outlive the process that made it when a successor takes it over.
//
// # Failure cases
//
//   - The acquirer dies between the grant and its Raft Begin (or anywhere before
//     Activate or Release): no one keeps its session alive, and etcd reclaims all of
//     its reservations at most SessionTTL (rounded up to whole seconds) + RevokeScan +
//     one commit after its last keepalive. They are never leaked. The same happens to
//     a live store cut off from etcd for longer than SessionTTL; it then starts a new
//     session, and Activate of a reclaimed txid returns lease.ErrNotFound.
//   - etcd unavailable (no quorum, no leader, unreachable): every method fails after
//     at most OpTimeout per round trip with an error satisfying
//     errors.Is(err, ErrUnavailable), never a hang. A write's effect is then unknown,
//     as for any timed-out write, but never partial: the Acquire Txn granted all of the
//     players or none, and Release of the txid cleans up either way.
//   - etcd leader change: the new leader gives every lease its full TTL again plus the
//     election timeout (etcd's lessor Promote), so leases live longer, never shorter:
//     I7 holds, and bounded expiry counts from the new leader taking over, as the
//     lease.Store contract allows. Calls during the change fail with ErrUnavailable,
//     including raft's "proposal dropped" during a leadership transfer, which etcd
//     sends with gRPC code Unknown. The cluster tests (process_test.go) show this on
//     a 3-member cluster of etcd 3.4 processes with the leader killed or moved.
//
// # Clock error ρ and expiry slack
//
// etcd grants TTLs in whole seconds, so the store asks for ⌈ttl⌉ seconds, and
// refuses (lease.ErrInvalid) a ttl below Options.MinTTL, etcd's minimum lease TTL
// (1.5 × election timeout, rounded up: 2s for etcd's defaults), which etcd would
// otherwise lengthen silently. The etcd leader measures each lease on its own
// monotonic clock from when it processed the Grant or keepalive, which is after the
// caller sent Activate or Renew. With that clock running fast by at most ρ = Rho
// (1%), the lease lives at least ⌈ttl⌉/(1+ρ) ≥ ttl·(1−ρ) of real time (I7).
//
// It is gone at most ExpirySlack(ttl, commit) after ttl·(1+ρ): the rounding to whole
// seconds (⌈ttl⌉ − ttl), one scan of etcd's lessor (RevokeScan, 500ms), and the
// commit of the revoke proposal. etcd revokes at most 1000 leases a second, so a
// pile-up of expiries (or a leader change, which refreshes them all at once) can
// delay revokes further. Until the revoke commits, Get still shows the lease; Renew
// already returns lease.ErrNotFound.
//
// # Measured floor
//
// BenchmarkAcquireRelease, single-member embedded etcd on ext4 with fsync, on the
// 2-core development VM (shared with other work, load 3-5), -benchtime 3s, range of
// three runs. A pair is one Acquire (one Txn) and one Release (a read and one Txn):
//
//	players  callers   pairs/s      write Txn/s
//	2        1         790-1110     1570-2220
//	2        8×CPU     2280-2560    4560-5120
//	10       1         620-650      1240-1300
//	10       8×CPU     1160-1640    2330-3280
//
// A real cluster adds a network round trip and a replicated fsync to every write,
// so treat these as an upper bound; docs/etcd-leases.md has the detail.
package etcdlease
