package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/leasetest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const testRho = 0.01

// memHarness runs the conformance suite against MemStore on a fake clock. Advance
// moves the clock and then scans synchronously, so expiry never races the goroutine.
func memHarness() leasetest.Harness {
	type store struct {
		f *clock.Fake
		s *lease.MemStore
	}
	var mu sync.Mutex
	stores := map[*testing.T]store{}
	return leasetest.Harness{
		New: func(t *testing.T) lease.Store {
			f := clock.NewFake(epoch)
			s := newMem(t, f, time.Second)
			mu.Lock()
			stores[t] = store{f, s}
			mu.Unlock()
			return s
		},
		Advance: func(t *testing.T, d time.Duration) {
			mu.Lock()
			st := stores[t]
			mu.Unlock()
			st.f.Advance(d)
			st.s.ExpireDue()
		},
		Rho: testRho,
		TTL: 10 * time.Second,
	}
}

// noScan is a scan interval no test advances past, for tests that count what their
// own ExpireDue calls expire and must not race the background scan.
const noScan = 1000 * time.Hour

func newMem(t *testing.T, c clock.Clock, scan time.Duration) *lease.MemStore {
	t.Helper()
	s, err := lease.NewMemStore(lease.MemStoreConfig{Clock: c, Rho: testRho, ScanInterval: scan})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMemStoreConformance(t *testing.T) {
	defer goleak.VerifyNone(t)
	leasetest.Run(t, memHarness())
}

func TestMemStoreConfigErrorsNameField(t *testing.T) {
	for _, c := range []struct {
		cfg   lease.MemStoreConfig
		field string
	}{
		{lease.MemStoreConfig{Rho: -0.1}, "Rho"},
		{lease.MemStoreConfig{Rho: 1}, "Rho"},
		{lease.MemStoreConfig{ScanInterval: -time.Second}, "ScanInterval"},
	} {
		_, err := lease.NewMemStore(c.cfg)
		if !errors.Is(err, lease.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewMemStore(%+v) = %v, want ErrInvalid naming %s", c.cfg, err, c.field)
		}
	}
}

// acquireActive acquires players for txid with ttl and activates them.
func acquireActive(t *testing.T, s lease.Store, txid string, ttl time.Duration, players ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Acquire(ctx, txid, players, ttl); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, txid); err != nil {
		t.Fatal(err)
	}
}

func held(s lease.Store, player string) bool {
	_, err := s.Get(context.Background(), player)
	return err == nil
}

// The deadline is exactly ttl·(1+ρ), rounded up: not a nanosecond earlier.
func TestMemStoreExpiresAtTTLTimesOnePlusRho(t *testing.T) {
	f := clock.NewFake(epoch)
	s := newMem(t, f, noScan)
	acquireActive(t, s, "tx", 100*time.Second, "p")
	f.Advance(101*time.Second - time.Nanosecond)
	if n := s.ExpireDue(); n != 0 || !held(s, "p") {
		t.Fatalf("expired %d matches 1ns before ttl·(1+ρ)", n)
	}
	f.Advance(time.Nanosecond)
	if n := s.ExpireDue(); n != 1 || held(s, "p") {
		t.Fatalf("expired %d matches at ttl·(1+ρ), want 1", n)
	}
}

// A wall clock stepped by hours either way changes nothing: expiry is on Mono only.
func TestMemStoreIgnoresWallClockJumps(t *testing.T) {
	f := clock.NewFake(epoch)
	s := newMem(t, f, noScan)
	acquireActive(t, s, "tx", 10*time.Second, "p")
	f.JumpWall(48 * time.Hour)
	f.Advance(5 * time.Second)
	s.ExpireDue()
	f.JumpWall(-96 * time.Hour)
	if s.ExpireDue() != 0 || !held(s, "p") {
		t.Fatal("wall clock jump expired a lease")
	}
	if err := s.Renew(context.Background(), "tx"); err != nil {
		t.Fatal(err)
	}
	f.JumpWall(-time.Hour)
	f.Advance(10*time.Second + 100*time.Millisecond)
	if s.ExpireDue() != 1 || held(s, "p") {
		t.Fatal("lease not expired ttl·(1+ρ) after renew despite a backward wall jump")
	}
}

// The background goroutine expires due leases without anyone calling ExpireDue.
func TestMemStoreBackgroundExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := clock.NewFake(epoch)
	s := newMem(t, f, time.Second)
	acquireActive(t, s, "tx", 10*time.Second, "p")
	f.WaitForTimers(1) // the scan ticker
	f.Advance(11 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for held(s, "p") {
		if time.Now().After(deadline) {
			t.Fatal("background scan did not expire the lease")
		}
		time.Sleep(time.Millisecond)
	}
	_ = s.Close()
}

func TestMemStoreClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := clock.NewFake(epoch)
	s, err := lease.NewMemStore(lease.MemStoreConfig{Clock: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Acquire(ctx, "tx", []string{"p"}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if f.Timers() != 0 {
		t.Fatalf("%d timers left after Close", f.Timers())
	}
	if _, err := s.Get(ctx, "p"); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Release(ctx, "tx"); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Release after Close = %v, want ErrClosed", err)
	}
	if s.ExpireDue() != 0 {
		t.Fatal("ExpireDue did something after Close")
	}
}

func TestMemStoreHonoursContext(t *testing.T) {
	s := newMem(t, clock.NewFake(epoch), noScan)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Acquire(ctx, "tx", []string{"p"}, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with cancelled ctx = %v", err)
	}
	if held(s, "p") {
		t.Fatal("cancelled Acquire granted a lease")
	}
}

// MemStore on the real clock, for one short TTL: the path production uses.
func TestMemStoreRealClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, err := lease.NewMemStore(lease.MemStoreConfig{ScanInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acquireActive(t, s, "tx", 50*time.Millisecond, "p")
	if !held(s, "p") {
		t.Fatal("lease gone at once")
	}
	deadline := time.Now().Add(10 * time.Second)
	for held(s, "p") {
		if time.Now().After(deadline) {
			t.Fatal("lease never expired on the real clock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
