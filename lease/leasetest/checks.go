package leasetest

import (
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/lease"
)

// CheckAcquireAllOrNothing checks that an Acquire touching busy players grants nothing
// and returns a *LeasedError naming exactly the busy players and their holders.
func CheckAcquireAllOrNothing(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		a := e.acquire("txA", "a3", "a1", "a2")
		d := e.acquire("txD", "d1")
		tok := a[0].Token

		err := e.acquireErr("txB", e.h.TTL, "b1", "a3", "b2", "a1", "d1")
		e.wantLeased(err, map[string]string{"a1": "txA", "a3": "txA", "d1": "txD"})
		e.free("b1")
		e.free("b2")
		for _, p := range []string{"a1", "a2", "a3"} {
			e.held(p, "txA", tok, lease.Reserved)
		}
		e.held("d1", "txD", d[0].Token, lease.Reserved)
		e.want(e.s.Release(e.ctx, "txB"), lease.ErrNotFound, "Release of the refused txid")

		// Busy and ACTIVE is just as busy.
		e.want(e.s.Activate(e.ctx, "txA"), nil, "Activate(txA)")
		err = e.acquireErr("txC", e.h.TTL, "c1", "a2")
		e.wantLeased(err, map[string]string{"a2": "txA"})
		e.free("c1")

		// Once the holder lets go, the same request succeeds whole.
		e.want(e.s.Release(e.ctx, "txA"), nil, "Release(txA)")
		e.want(e.s.Release(e.ctx, "txD"), nil, "Release(txD)")
		e.acquire("txB", "b1", "a3", "b2", "a1", "d1")
	})
}

// wantLeased fails unless err is a *LeasedError with exactly the given holders.
func (e *env) wantLeased(err error, holders map[string]string) {
	var le *lease.LeasedError
	if !errors.As(err, &le) || !errors.Is(err, lease.ErrLeased) {
		e.failf("error %v (%T) is not a *LeasedError satisfying errors.Is(err, ErrLeased)", err, err)
	}
	if !maps.Equal(le.Holders, holders) {
		e.failf("LeasedError.Holders = %v, want exactly %v", le.Holders, holders)
	}
}

// CheckInvalidArgumentsChangeNothing checks that malformed calls return ErrInvalid or
// ErrNotFound and change nothing.
func CheckInvalidArgumentsChangeNothing(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		tok := e.acquire("txA", "p1", "p2")[0].Token
		ttl := e.h.TTL
		cases := []struct {
			name    string
			txid    string
			players []string
			ttl     time.Duration
		}{
			{"empty txid", "", []string{"q1"}, ttl},
			{"nil players", "txX", nil, ttl},
			{"no players", "txX", []string{}, ttl},
			{"empty player id", "txX", []string{"q1", ""}, ttl},
			{"duplicate player", "txX", []string{"q1", "q2", "q1"}, ttl},
			{"zero ttl", "txX", []string{"q1"}, 0},
			{"negative ttl", "txX", []string{"q1"}, -time.Second},
			{"txid already holds leases", "txA", []string{"q1"}, ttl},
		}
		for _, c := range cases {
			err := e.acquireErr(c.txid, c.ttl, c.players...)
			e.want(err, lease.ErrInvalid, fmt.Sprintf("Acquire with %s", c.name))
			e.free("q1")
			e.free("q2")
			e.held("p1", "txA", tok, lease.Reserved)
			e.held("p2", "txA", tok, lease.Reserved)
		}
		e.want(e.s.Activate(e.ctx, "txX"), lease.ErrNotFound, "Activate of unknown txid")
		e.want(e.s.Renew(e.ctx, "txX"), lease.ErrNotFound, "Renew of unknown txid")
		e.want(e.s.Release(e.ctx, "txX"), lease.ErrNotFound, "Release of unknown txid")
		e.held("p1", "txA", tok, lease.Reserved)
		// The refused calls left q1 and q2 free for a well-formed acquire.
		e.acquire("txX", "q1", "q2")
	})
}

// CheckTokensIncreasePerPlayer checks that every grant of a player carries a token
// above every earlier one, across release, abort, match end and expiry.
func CheckTokensIncreasePerPlayer(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		pool := []string{"t0", "t1", "t2", "t3", "t4"}
		last := map[string]uint64{}
		// A long-lived holder elsewhere, so tokens also interleave with it.
		bg := e.acquire("txBG", "bg")[0].Token
		for i := range 12 {
			txid := fmt.Sprintf("tx%02d", i)
			players := []string{pool[i%5], pool[(i+2)%5]}
			if i%4 == 3 {
				players = append(players, pool[(i+1)%5])
			}
			tok := e.acquire(txid, players...)[0].Token
			for _, p := range players {
				if tok <= last[p] {
					e.failf("round %d: player %q granted token %d after token %d", i, p, tok, last[p])
				}
				last[p] = tok
				e.held(p, txid, tok, lease.Reserved)
			}
			switch {
			case i%3 == 0: // abort
				e.want(e.s.Release(e.ctx, txid), nil, "Release (abort) "+txid)
			case i == 4 || i == 8: // match runs out unrenewed and expires
				e.want(e.s.Activate(e.ctx, txid), nil, "Activate "+txid)
				e.advance(e.hi)
				for _, p := range players {
					e.free(p)
				}
			default: // match ends
				e.want(e.s.Activate(e.ctx, txid), nil, "Activate "+txid)
				e.held(players[0], txid, tok, lease.Active)
				e.want(e.s.Release(e.ctx, txid), nil, "Release (match end) "+txid)
			}
		}
		e.held("bg", "txBG", bg, lease.Reserved)
	})
}

// CheckStateRules checks which operations apply to RESERVED and ACTIVE leases.
func CheckStateRules(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		tok := e.acquire("txA", "s1", "s2")[0].Token
		e.want(e.s.Renew(e.ctx, "txA"), lease.ErrWrongState, "Renew of a RESERVED lease")
		e.held("s1", "txA", tok, lease.Reserved)
		e.want(e.s.Activate(e.ctx, "txA"), nil, "Activate")
		e.held("s1", "txA", tok, lease.Active)
		e.held("s2", "txA", tok, lease.Active)
		e.want(e.s.Activate(e.ctx, "txA"), lease.ErrWrongState, "second Activate")
		e.want(e.s.Renew(e.ctx, "txA"), nil, "Renew of an ACTIVE lease")
		e.want(e.s.Renew(e.ctx, "txA"), nil, "second Renew")
		e.held("s2", "txA", tok, lease.Active)
		e.want(e.s.Release(e.ctx, "txA"), nil, "Release of an ACTIVE lease")
		e.free("s1")
		e.free("s2")
		e.want(e.s.Release(e.ctx, "txA"), lease.ErrNotFound, "second Release")
		e.want(e.s.Renew(e.ctx, "txA"), lease.ErrNotFound, "Renew after Release")
		e.want(e.s.Activate(e.ctx, "txA"), lease.ErrNotFound, "Activate after Release")

		e.acquire("txB", "s1")
		e.want(e.s.Release(e.ctx, "txB"), nil, "Release of a RESERVED lease (abort)")
		e.free("s1")
		e.want(e.s.Activate(e.ctx, "txB"), lease.ErrNotFound, "Activate after abort")
	})
}

// CheckRenewKeepsLeaseAlive checks that renewing every ttl/2 keeps a lease well past
// its original TTL, and that it expires on time once the renews stop.
func CheckRenewKeepsLeaseAlive(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		tok := e.acquire("txA", "r1", "r2")[0].Token
		e.want(e.s.Activate(e.ctx, "txA"), nil, "Activate")
		for i := range 6 {
			e.advance(e.h.TTL / 2)
			e.held("r1", "txA", tok, lease.Active)
			e.want(e.s.Renew(e.ctx, "txA"), nil, fmt.Sprintf("Renew %d at %d×ttl/2 since Activate", i, i+1))
		}
		e.advance(e.lo)
		e.held("r2", "txA", tok, lease.Active)
		e.advance(e.hi - e.lo)
		e.free("r1")
		e.free("r2")
		e.want(e.s.Renew(e.ctx, "txA"), lease.ErrNotFound, "Renew after expiry")
	})
}

// CheckActiveLeaseLifetime checks invariant I7 and bounded expiry: an unrenewed ACTIVE
// lease lives through ttl·(1−ρ) and is gone by ttl·(1+ρ) + ExpirySlack, after which
// its players can be acquired again.
func CheckActiveLeaseLifetime(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		tok := e.acquire("txA", "l1", "l2")[0].Token
		e.want(e.s.Activate(e.ctx, "txA"), nil, "Activate")
		e.advance(e.lo)
		e.held("l1", "txA", tok, lease.Active)
		e.held("l2", "txA", tok, lease.Active)
		e.advance(e.hi - e.lo)
		e.free("l1")
		e.free("l2")
		e.want(e.s.Renew(e.ctx, "txA"), lease.ErrNotFound, "Renew after expiry")
		e.want(e.s.Release(e.ctx, "txA"), lease.ErrNotFound, "Release after expiry")
		if tok2 := e.acquire("txB", "l1", "l2")[0].Token; tok2 <= tok {
			e.failf("re-acquire after expiry got token %d, earlier grant had %d", tok2, tok)
		}
	})
}

// CheckReservedNeverExpires checks that a RESERVED lease outlives any number of TTLs
// (only the transaction's decision ends it), and that its TTL starts at Activate.
func CheckReservedNeverExpires(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		tok := e.acquire("txA", "v1", "v2")[0].Token
		for range 3 {
			e.advance(e.hi)
			e.held("v1", "txA", tok, lease.Reserved)
		}
		e.want(e.s.Activate(e.ctx, "txA"), nil, "Activate after 3 TTLs reserved")
		e.advance(e.lo)
		e.held("v2", "txA", tok, lease.Active)
		e.advance(e.hi - e.lo)
		e.free("v1")
		e.free("v2")
	})
}
