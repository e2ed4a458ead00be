package leasetest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/leasetest"
)

const rho = 0.01

// harness runs checks against MemStore on a fake clock, seen through wrap.
func harness(wrap func(lease.Store) lease.Store) leasetest.Harness {
	type store struct {
		f *clock.Fake
		s *lease.MemStore
	}
	var mu sync.Mutex
	stores := map[*testing.T]store{}
	return leasetest.Harness{
		New: func(t *testing.T) lease.Store {
			f := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			s, err := lease.NewMemStore(lease.MemStoreConfig{Clock: f, Rho: rho})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			mu.Lock()
			stores[t] = store{f, s}
			mu.Unlock()
			return wrap(s)
		},
		Advance: func(t *testing.T, d time.Duration) {
			mu.Lock()
			st := stores[t]
			mu.Unlock()
			st.f.Advance(d)
			st.s.ExpireDue()
		},
		Rho: rho,
	}
}

// The suite's checks all pass on the correct store through an identity wrapper, so a
// failure below is the broken store's doing, not the harness's.
func TestChecksPassOnMemStore(t *testing.T) {
	leasetest.Run(t, harness(func(s lease.Store) lease.Store { return s }))
}

// Each deliberately broken store must fail every check listed for it.
func TestChecksCatchBrokenStores(t *testing.T) {
	for _, b := range []struct {
		name  string
		wrap  func(lease.Store) lease.Store
		catch []string
	}{
		{"grants a busy player", func(s lease.Store) lease.Store { return stealing{s} },
			[]string{"AcquireAllOrNothing", "ConcurrentAcquireOneWinner", "ConcurrentChurnExclusive"}},
		{"grants the free part of a busy request", func(s lease.Store) lease.Store { return partial{s} },
			[]string{"AcquireAllOrNothing"}},
		{"reuses tokens", func(s lease.Store) lease.Store { return &reusingTokens{Store: s} },
			[]string{"TokensIncreasePerPlayer", "ConcurrentChurnExclusive"}},
		{"expires early", func(s lease.Store) lease.Store { return scaledTTL{s, 9, 10} },
			[]string{"ActiveLeaseLifetime", "RenewKeepsLeaseAlive", "ReservedNeverExpires"}},
		{"expires late", func(s lease.Store) lease.Store { return scaledTTL{s, 11, 10} },
			[]string{"ActiveLeaseLifetime", "RenewKeepsLeaseAlive", "ReservedNeverExpires", "TokensIncreasePerPlayer"}},
		{"expires reserved leases", func(s lease.Store) lease.Store { return activatingEarly{s} },
			[]string{"ReservedNeverExpires"}},
		{"ignores renew", func(s lease.Store) lease.Store { return ignoringRenew{s} },
			[]string{"RenewKeepsLeaseAlive"}},
		{"accepts malformed acquires", func(s lease.Store) lease.Store { return lenientArgs{s} },
			[]string{"InvalidArgumentsChangeNothing"}},
		{"ignores state rules", func(s lease.Store) lease.Store { return lenientStates{s} },
			[]string{"StateRules"}},
	} {
		t.Run(b.name, func(t *testing.T) {
			h := harness(b.wrap)
			for _, c := range leasetest.Checks() {
				if !slices.Contains(b.catch, c.Name) {
					continue
				}
				t.Run(c.Name, func(t *testing.T) {
					err := c.Fn(t, h)
					if err == nil {
						t.Fatalf("check %s passed a store that %s", c.Name, b.name)
					}
					t.Logf("caught: %v", err)
				})
			}
		})
	}
}

// stealing grants busy players by releasing their holders first.
type stealing struct{ lease.Store }

func (s stealing) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	ls, err := s.Store.Acquire(ctx, txid, players, ttl)
	var le *lease.LeasedError
	if !errors.As(err, &le) {
		return ls, err
	}
	for _, holder := range le.Holders {
		_ = s.Store.Release(ctx, holder)
	}
	return s.Store.Acquire(ctx, txid, players, ttl)
}

// partial grants the free players of a request that also names busy ones.
type partial struct{ lease.Store }

func (s partial) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	ls, err := s.Store.Acquire(ctx, txid, players, ttl)
	var le *lease.LeasedError
	if !errors.As(err, &le) {
		return ls, err
	}
	var free []string
	for _, p := range players {
		if _, busy := le.Holders[p]; !busy {
			free = append(free, p)
		}
	}
	if len(free) > 0 {
		_, _ = s.Store.Acquire(ctx, txid, free, ttl)
	}
	return nil, err
}

// reusingTokens numbers grants 1, 2, 1, 2, ... as a store keeping a small per-slot
// counter would.
type reusingTokens struct {
	lease.Store
	mu     sync.Mutex
	tokens map[uint64]uint64 // real -> reported
}

func (s *reusingTokens) fake(tok uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = map[uint64]uint64{}
	}
	if _, ok := s.tokens[tok]; !ok {
		s.tokens[tok] = uint64(len(s.tokens)%2 + 1)
	}
	return s.tokens[tok]
}

func (s *reusingTokens) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	ls, err := s.Store.Acquire(ctx, txid, players, ttl)
	for i := range ls {
		ls[i].Token = s.fake(ls[i].Token)
	}
	return ls, err
}

func (s *reusingTokens) Get(ctx context.Context, player string) (lease.Lease, error) {
	l, err := s.Store.Get(ctx, player)
	if err == nil {
		l.Token = s.fake(l.Token)
	}
	return l, err
}

// scaledTTL really holds leases for ttl·num/den but reports ttl.
type scaledTTL struct {
	lease.Store
	num, den time.Duration
}

func (s scaledTTL) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	ls, err := s.Store.Acquire(ctx, txid, players, ttl*s.num/s.den)
	for i := range ls {
		ls[i].TTL = ttl
	}
	return ls, err
}

// activatingEarly starts the TTL at Acquire, while still reporting RESERVED.
type activatingEarly struct{ lease.Store }

func (s activatingEarly) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	ls, err := s.Store.Acquire(ctx, txid, players, ttl)
	if err == nil {
		_ = s.Store.Activate(ctx, txid)
	}
	return ls, err
}

func (s activatingEarly) Activate(ctx context.Context, txid string) error {
	return s.Store.Renew(ctx, txid)
}

func (s activatingEarly) Get(ctx context.Context, player string) (lease.Lease, error) {
	l, err := s.Store.Get(ctx, player)
	if err == nil && l.RenewSeq == 0 {
		l.State = lease.Reserved
	}
	return l, err
}

// ignoringRenew acknowledges renews without performing them.
type ignoringRenew struct{ lease.Store }

func (ignoringRenew) Renew(context.Context, string) error { return nil }

// lenientArgs "repairs" malformed acquires instead of refusing them.
type lenientArgs struct{ lease.Store }

func (s lenientArgs) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	if ttl <= 0 {
		ttl = time.Second
	}
	players = slices.Compact(slices.Sorted(slices.Values(players)))
	return s.Store.Acquire(ctx, txid, players, ttl)
}

// lenientStates treats a duplicate Activate as success and a Renew of a RESERVED
// lease as an Activate.
type lenientStates struct{ lease.Store }

func (s lenientStates) Activate(ctx context.Context, txid string) error {
	if err := s.Store.Activate(ctx, txid); !errors.Is(err, lease.ErrWrongState) {
		return err
	}
	return nil
}

func (s lenientStates) Renew(ctx context.Context, txid string) error {
	if err := s.Store.Renew(ctx, txid); !errors.Is(err, lease.ErrWrongState) {
		return err
	}
	return s.Store.Activate(ctx, txid)
}
