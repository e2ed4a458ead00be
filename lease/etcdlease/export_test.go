package etcdlease

// Deliberately broken stores, for proving the conformance suite catches them.

// WithoutCreateCompare makes Acquire grant without comparing that the players' keys
// do not exist: it overwrites a busy player's key.
func WithoutCreateCompare(o Options) Options { o.faults.noCreateCompare = true; return o }

// WithReservedOnMatchTTL attaches RESERVED leases to an etcd lease of the match TTL
// instead of the owner session, so they expire.
func WithReservedOnMatchTTL(o Options) Options { o.faults.reservedOnTTL = true; return o }

// WithoutRenew makes Renew acknowledge without renewing.
func WithoutRenew(o Options) Options { o.faults.noRenew = true; return o }

// Transient reports whether the store treats err as etcd being unavailable.
var Transient = transient
