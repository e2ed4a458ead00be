// Package leasetest is the conformance suite for lease.Store: every backend (MemStore
// today, a store on etcd next) runs the same checks, so they are interchangeable behind
// the interface.
//
// Each check is also exported as a function that returns an error instead of failing
// the test, so the suite's own tests can run it against deliberately broken stores and
// prove that it catches them: a checker that has never failed proves nothing.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/lease"
)

// Harness is how the suite drives one backend.
type Harness struct {
	// New returns a fresh, empty store. It should register its own cleanup (Close)
	// with t.Cleanup.
	New func(t *testing.T) lease.Store
	// Advance moves the store's time forward by d: a fake clock plus a synchronous
	// expiry scan for in-process stores, or a real sleep for real backends. t is the
	// test that called New.
	Advance func(t *testing.T, d time.Duration)
	// Rho is the backend's tolerated clock rate error ρ: leases must live at least
	// ttl·(1−ρ) and be gone by ttl·(1+ρ) + ExpirySlack.
	Rho float64
	// TTL is the lease TTL the timing checks use. Real backends need one long enough
	// for their granularity (etcd counts whole seconds). Default 10s.
	TTL time.Duration
	// ExpirySlack is how long after ttl·(1+ρ) an unrenewed lease may still be seen,
	// the backend's documented expiry delay. Zero for a store whose Advance expires
	// synchronously.
	ExpirySlack time.Duration
	// Timeout bounds each check. Default 1 minute.
	Timeout time.Duration
}

// withDefaults fills zero fields and validates the harness; errors name the field.
func (h Harness) withDefaults() (Harness, error) {
	if h.TTL == 0 {
		h.TTL = 10 * time.Second
	}
	if h.Timeout == 0 {
		h.Timeout = time.Minute
	}
	switch {
	case h.New == nil:
		return h, errors.New("leasetest: Harness.New is nil")
	case h.Advance == nil:
		return h, errors.New("leasetest: Harness.Advance is nil")
	case math.IsNaN(h.Rho) || h.Rho < 0 || h.Rho >= 1:
		return h, fmt.Errorf("leasetest: Harness.Rho (%v) must be in [0, 1)", h.Rho)
	case h.TTL < 0:
		return h, fmt.Errorf("leasetest: Harness.TTL (%v) must be positive", h.TTL)
	case h.ExpirySlack < 0:
		return h, fmt.Errorf("leasetest: Harness.ExpirySlack (%v) must not be negative", h.ExpirySlack)
	}
	return h, nil
}

// Check is one named conformance check. Fn returns nil if the store conforms and an
// error describing the first violation otherwise; it never fails t itself, t is only
// passed on to the harness.
type Check struct {
	// Name is the subtest name Run uses.
	Name string
	// Fn runs the check against a fresh store from h.
	Fn func(t *testing.T, h Harness) error
}

// Checks returns every check, in the order Run runs them.
func Checks() []Check {
	return []Check{
		{"AcquireAllOrNothing", CheckAcquireAllOrNothing},
		{"InvalidArgumentsChangeNothing", CheckInvalidArgumentsChangeNothing},
		{"TokensIncreasePerPlayer", CheckTokensIncreasePerPlayer},
		{"StateRules", CheckStateRules},
		{"RenewKeepsLeaseAlive", CheckRenewKeepsLeaseAlive},
		{"ActiveLeaseLifetime", CheckActiveLeaseLifetime},
		{"ReservedNeverExpires", CheckReservedNeverExpires},
		{"ConcurrentAcquireOneWinner", CheckConcurrentAcquireOneWinner},
		{"ConcurrentChurnExclusive", CheckConcurrentChurnExclusive},
	}
}

// Run runs every check as a subtest of t against stores made by h.
func Run(t *testing.T, h Harness) {
	if _, err := h.withDefaults(); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			if err := c.Fn(t, h); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// failure carries a check's verdict out of deeply nested helpers. It is only ever
// raised and recovered on the check's own goroutine, by run.
type failure struct{ err error }

// env is one check's store, context and bounds.
type env struct {
	t      *testing.T
	h      Harness
	s      lease.Store
	ctx    context.Context
	lo, hi time.Duration // the lease must live through lo and be gone by hi
}

// run builds an env and runs body, turning a failf inside it into the returned error.
func run(t *testing.T, h Harness, body func(e *env)) (err error) {
	h, err = h.withDefaults()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	e := &env{t: t, h: h, s: h.New(t), ctx: ctx}
	margin := time.Duration(math.Ceil(float64(h.TTL) * h.Rho))
	e.lo = h.TTL - margin
	e.hi = h.TTL + margin + h.ExpirySlack
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	body(e)
	return nil
}

func (e *env) failf(format string, args ...any) {
	panic(failure{fmt.Errorf(format, args...)})
}

func (e *env) advance(d time.Duration) { e.h.Advance(e.t, d) }

// acquire acquires players for txid with the harness TTL and checks the result's shape.
func (e *env) acquire(txid string, players ...string) []lease.Lease {
	ls, err := e.s.Acquire(e.ctx, txid, players, e.h.TTL)
	if err != nil {
		e.failf("Acquire(%q, %q): %v", txid, players, err)
	}
	if err := checkGranted(ls, txid, players, e.h.TTL); err != nil {
		e.failf("Acquire(%q, %q): %v", txid, players, err)
	}
	return ls
}

// checkGranted checks what Acquire returned: one RESERVED lease per player, sorted,
// for txid, all with the same positive token.
func checkGranted(ls []lease.Lease, txid string, players []string, ttl time.Duration) error {
	want := slices.Clone(players)
	slices.Sort(want)
	if len(ls) != len(want) {
		return fmt.Errorf("returned %d leases for %d players: %+v", len(ls), len(want), ls)
	}
	for i, l := range ls {
		if l.Player != want[i] || l.TxID != txid || l.State != lease.Reserved || l.TTL != ttl ||
			l.Token == 0 || l.Token != ls[0].Token {
			return fmt.Errorf("lease %d is %+v, want player %q of txid %q, RESERVED, ttl %v, same non-zero token as the others: %+v",
				i, l, want[i], txid, ttl, ls)
		}
	}
	return nil
}

// acquireErr calls Acquire expecting it to fail; it returns the error.
func (e *env) acquireErr(txid string, ttl time.Duration, players ...string) error {
	ls, err := e.s.Acquire(e.ctx, txid, players, ttl)
	if err == nil {
		e.failf("Acquire(%q, %q, %v) succeeded with %+v, want an error", txid, players, ttl, ls)
	}
	return err
}

// want fails unless err matches target (nil meaning success).
func (e *env) want(err, target error, what string) {
	if target == nil && err != nil {
		e.failf("%s: %v, want success", what, err)
	}
	if target != nil && !errors.Is(err, target) {
		e.failf("%s: %v, want %v", what, err, target)
	}
}

// held fails unless player is leased to txid with the given token and state.
func (e *env) held(player, txid string, token uint64, st lease.State) lease.Lease {
	l, err := e.s.Get(e.ctx, player)
	if err != nil {
		e.failf("Get(%q): %v, want held by %q", player, err, txid)
	}
	if l.Player != player || l.TxID != txid || l.Token != token || l.State != st {
		e.failf("Get(%q) = %+v, want txid %q token %d state %v", player, l, txid, token, st)
	}
	return l
}

// free fails unless player has no lease.
func (e *env) free(player string) {
	l, err := e.s.Get(e.ctx, player)
	if !errors.Is(err, lease.ErrNotFound) {
		e.failf("Get(%q) = %+v, %v; want ErrNotFound", player, l, err)
	}
}
