package lease

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// State is where a lease is in its life. The zero value is not a valid state, so a
// forgotten field is caught by validation rather than read as RESERVED.
type State uint8

const (
	// Reserved is a lease granted when a transaction begins. It holds the player while
	// the shards vote, and it never expires on time: only the transaction's decision
	// (Activate on commit, Release on abort) ends it, because a participant that voted
	// YES must not see its player taken while the outcome is still unknown.
	Reserved State = iota + 1
	// Active is a lease of a committed match. It lives for its TTL from its last
	// Activate or Renew, and is removed by Release at match end or by Expire.
	Active
)

// String returns the name used in logs, the admin API and the wire schema.
func (s State) String() string {
	switch s {
	case Reserved:
		return "RESERVED"
	case Active:
		return "ACTIVE"
	default:
		return "State(" + strconv.Itoa(int(s)) + ")"
	}
}

// valid reports whether s is one of the defined states.
func (s State) valid() bool { return s == Reserved || s == Active }

// Lease is one player's lease. It is a value: changing a returned Lease changes nothing
// in the table or store it came from.
type Lease struct {
	// Player is the leased player's id.
	Player string
	// TxID is the transaction (match) that holds the player.
	TxID string
	// Token is the fencing token of the grant. Every lease of one transaction carries the
	// same token, and tokens strictly increase per player for the life of the table, so
	// shards can reject writes carrying a lower token than the highest they have seen.
	Token uint64
	// State is RESERVED until the transaction commits, then ACTIVE.
	State State
	// TTL is how long an ACTIVE lease lives after its last Activate or Renew.
	TTL time.Duration
	// RenewSeq counts successful renews since activation. The leader's expiry proposal
	// carries the RenewSeq it measured from, so a renew that lands in between wins.
	RenewSeq uint64
}

// Errors returned by Table, Store implementations and MemStore. They are always wrapped
// with %w and context (which txid, which player), so test them with errors.Is, never by
// comparing strings. A *LeasedError is returned when players are busy; it satisfies
// errors.Is(err, ErrLeased) and carries who holds each busy player.
var (
	// ErrNotFound means the player or transaction holds no lease. For Release and Renew
	// it usually means the lease already ended (released, aborted or expired), so a
	// retrying caller may treat it as "already done" for Release but must treat it as
	// "lost" for Renew.
	ErrNotFound = errors.New("lease: not found")
	// ErrInvalid means the arguments were malformed (empty or duplicate ids, a
	// non-positive TTL, a txid that already holds leases, an inconsistent snapshot).
	// Nothing was changed. It is a caller bug, never a transient condition.
	ErrInvalid = errors.New("lease: invalid argument")
	// ErrTokenNotIncreasing means a grant's fencing token is not greater than every
	// token the table has ever issued. Granting it would break fencing (invariant I4),
	// so nothing was changed.
	ErrTokenNotIncreasing = errors.New("lease: fencing token not increasing")
	// ErrWrongState means the operation does not apply to the lease's state: activating
	// an ACTIVE lease, renewing or expiring a RESERVED one.
	ErrWrongState = errors.New("lease: wrong state")
	// ErrLeased means some requested players are held by another transaction. The
	// error returned is a *LeasedError naming them; errors.Is(err, ErrLeased) holds.
	ErrLeased = errors.New("lease: players leased")
	// ErrClosed means the store was closed; no further operation will succeed.
	ErrClosed = errors.New("lease: store closed")
)

// LeasedError reports every requested player that another transaction holds, so the
// coordinator can decide PLAYER_LEASED with per-player detail and a matchmaker can
// requeue the free players at once instead of discovering the busy ones one by one.
type LeasedError struct {
	// Holders maps each busy player to the txid that holds it.
	Holders map[string]string
}

// Error names the busy players and their holders, sorted by player so the message is
// deterministic (it may end up in a replicated log).
func (e *LeasedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrLeased.Error())
	b.WriteString(": ")
	for i, p := range e.Players() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(p))
		b.WriteString(" held by ")
		b.WriteString(strconv.Quote(e.Holders[p]))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrLeased) true for a *LeasedError.
func (e *LeasedError) Is(target error) bool { return target == ErrLeased }

// Players returns the busy players, sorted.
func (e *LeasedError) Players() []string {
	ps := make([]string, 0, len(e.Holders))
	for p := range e.Holders {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}
