package lease

import (
	"context"
	"time"
)

// Store is the contract a lease backend satisfies. MemStore implements it in process
// (the coordinator's FSM embeds a Table directly), and package lease/etcdlease on etcd,
// for several coordinator groups sharing one player table. Package leasetest checks
// any implementation against it, so backends are interchangeable.
//
// Safety rules that hold across all methods, for the whole life of a store (across
// restarts and leader changes for durable backends):
//
//   - At most one holder: a player is held by at most one txid at any moment (I2).
//   - Fencing: the token of a grant is strictly greater than every token the store has
//     issued before for any of its players (I4), and every lease of one Acquire carries
//     the same token.
//   - No early expiry: an ACTIVE lease is never taken from its holder before
//     ttl·(1−ρ) of real time since its last successful Activate or Renew was called,
//     where ρ is the backend's tolerated clock rate error (I7). A holder may therefore
//     count from the moment it sent the call, on its own clock.
//   - Bounded expiry: an ACTIVE lease that is not renewed is gone no later than
//     ttl·(1+ρ) plus the backend's documented expiry slack after its last Activate or
//     Renew returned (or, for a replicated backend, after a new leader took over: a new
//     leader gives every lease a full TTL because it cannot know how long its
//     predecessor counted).
//   - Reserved leases never expire: only Activate (commit) or Release (abort) ends them.
//
// Every method honours ctx: a call whose ctx ends returns ctx.Err() (possibly wrapped),
// and for a replicated backend its effect is then unknown, as with any timed-out write.
type Store interface {
	// Acquire grants RESERVED leases on all of players to txid, or on none of them. If
	// any player is held by another txid it returns a *LeasedError naming exactly those
	// players and their holders, and changes nothing. It returns ErrInvalid, changing
	// nothing, for an empty txid, no players, an empty or duplicate player id, a
	// non-positive ttl, or a txid that already holds leases. On success it returns the
	// leases sorted by player, all carrying one fresh token.
	Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]Lease, error)
	// Activate turns txid's RESERVED leases ACTIVE and starts their TTL. ErrNotFound if
	// txid holds nothing; ErrWrongState if its leases are already ACTIVE.
	Activate(ctx context.Context, txid string) error
	// Renew restarts the TTL of txid's ACTIVE leases. ErrNotFound if txid holds nothing,
	// which includes leases that already expired: the holder has lost them and must stop
	// acting on them. ErrWrongState if its leases are RESERVED.
	Renew(ctx context.Context, txid string) error
	// Release removes txid's leases in any state (abort or match end). ErrNotFound if
	// txid holds nothing, which a retrying caller may read as "already released".
	Release(ctx context.Context, txid string) error
	// Get returns player's current lease, or ErrNotFound.
	Get(ctx context.Context, player string) (Lease, error)
}
