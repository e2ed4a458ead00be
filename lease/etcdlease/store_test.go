package etcdlease_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/etcdlease"
)

// Many goroutines on two stores (two coordinators, two clients) acquire overlapping
// player sets: no player is ever held twice, tokens strictly increase per player, and
// a refused Acquire leaves none of its players with the refused txid.
func TestContentionAllOrNone(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	prefix := uniquePrefix()
	stores := []*etcdlease.Store{
		newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix}),
		newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix}),
	}
	const (
		goroutines = 8
		iters      = 30
		pool       = 10
	)
	ctx := context.Background()
	var (
		mu     sync.Mutex
		holder = map[string]string{}
		last   = map[string]uint64{}
		wins   int
		losses int
	)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			s := stores[g%2]
			rng := rand.New(rand.NewPCG(7, uint64(g)))
			for i := range iters {
				txid := fmt.Sprintf("g%d/i%d", g, i)
				var players []string
				for _, n := range rng.Perm(pool)[:2+rng.IntN(4)] {
					players = append(players, fmt.Sprintf("p%d", n))
				}
				ls, err := s.Acquire(ctx, txid, players, 2*time.Second)
				var le *lease.LeasedError
				if errors.As(err, &le) {
					for _, p := range players { // all or none: none
						if l, err := s.Get(ctx, p); err == nil && l.TxID == txid {
							errs[g] = fmt.Errorf("%s was refused (%v) yet holds %q", txid, le, p)
							return
						}
					}
					mu.Lock()
					losses++
					mu.Unlock()
					continue
				}
				if err != nil {
					errs[g] = fmt.Errorf("%s: Acquire: %w", txid, err)
					return
				}
				mu.Lock()
				wins++
				for _, l := range ls {
					if h, ok := holder[l.Player]; ok {
						errs[g] = fmt.Errorf("%s granted %q while %s held it", txid, l.Player, h)
					}
					if l.Token <= last[l.Player] {
						errs[g] = fmt.Errorf("%s granted %q token %d after %d", txid, l.Player, l.Token, last[l.Player])
					}
					holder[l.Player], last[l.Player] = txid, l.Token
				}
				mu.Unlock()
				if errs[g] != nil {
					return
				}
				if i%2 == 0 {
					if err := s.Activate(ctx, txid); err != nil {
						errs[g] = fmt.Errorf("%s: Activate: %w", txid, err)
						return
					}
				}
				mu.Lock()
				for _, p := range players {
					delete(holder, p)
				}
				mu.Unlock()
				if err := stores[(g+i)%2].Release(ctx, txid); err != nil { // either store may end it
					errs[g] = fmt.Errorf("%s: Release: %w", txid, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if wins == 0 || losses == 0 {
		t.Fatalf("%d wins, %d losses: no contention exercised", wins, losses)
	}
	t.Logf("%d acquires won, %d refused", wins, losses)
	if n := countKeys(t, srv.client(t), prefix); n != 0 {
		t.Fatalf("%d keys left under %s after every txid was released", n, prefix)
	}
}

func countKeys(t *testing.T, c *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// A coordinator that dies between Acquire and its decision (its client is cut off,
// nothing revoked) has its reservations reclaimed within the session TTL bound, and
// the players can then be granted again with a higher token. One that shuts down
// (Close) gives them back at once.
func TestAcquirerDiesReservationReclaimed(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	prefix := uniquePrefix()
	ctx := context.Background()
	other := newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix})

	const sessionTTL = 2 * time.Second
	dyingClient := srv.client(t)
	dying := newStore(t, dyingClient, etcdlease.Options{Prefix: prefix, SessionTTL: sessionTTL})
	ls, err := dying.Acquire(ctx, "txDead", []string{"d1", "d2"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := dyingClient.Close(); err != nil { // the process dies: no revoke, no keepalive
		t.Fatal(err)
	}
	if l, err := other.Get(ctx, "d1"); err != nil || l.TxID != "txDead" {
		t.Fatalf("right after the death: Get(d1) = %+v, %v; want still held by txDead", l, err)
	}
	// The last keepalive went out at most sessionTTL/3 before the death, so the lease
	// runs out within sessionTTL of it; then one lessor scan and a commit.
	bound := sessionTTL + etcdlease.RevokeScan + commitLatency
	took, ok := eventually(bound+5*time.Second, func() bool { return isFree(other, "d1") && isFree(other, "d2") })
	if !ok || took > bound {
		t.Fatalf("reservation of a dead acquirer reclaimed after %v (ok=%v), want within %v", took, ok, bound)
	}
	t.Logf("dead acquirer's reservation reclaimed after %v (bound %v)", took, bound)
	if err := other.Release(ctx, "txDead"); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("Release of the reclaimed txid = %v, want ErrNotFound", err)
	}
	ls2, err := other.Acquire(ctx, "txNext", []string{"d2", "d1"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ls2[0].Token <= ls[0].Token {
		t.Fatalf("re-grant token %d not above the dead grant's %d", ls2[0].Token, ls[0].Token)
	}

	closing := newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix})
	if _, err := closing.Acquire(ctx, "txClosed", []string{"c1"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	if took, ok := eventually(time.Second, func() bool { return isFree(other, "c1") }); !ok {
		t.Fatalf("Close did not give back its reservation within %v", took)
	}
	if _, err := closing.Get(ctx, "c1"); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Get on a closed store = %v, want ErrClosed", err)
	}
}

// With etcd stopped every method fails with ErrUnavailable within a bound instead of
// hanging; after a restart the refused Acquire granted nothing, the earlier grant is
// intact, and the store works again.
func TestEtcdStoppedFailsFastAndTyped(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	ctx := context.Background()
	c := srv.client(t)
	s := newStore(t, c, etcdlease.Options{SessionTTL: 30 * time.Second, OpTimeout: time.Second})
	before, err := s.Acquire(ctx, "txA", []string{"a1", "a2"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.stop()
	t.Logf("etcd stopped in %v", time.Since(start))

	bound := time.Second + time.Second // OpTimeout plus scheduling on a loaded machine
	for _, op := range []struct {
		name string
		fn   func() error
	}{
		{"Acquire", func() error { _, err := s.Acquire(ctx, "txB", []string{"b1", "a1", "b2"}, 2*time.Second); return err }},
		{"Get", func() error { _, err := s.Get(ctx, "a1"); return err }},
		{"Activate", func() error { return s.Activate(ctx, "txA") }},
		{"Renew", func() error { return s.Renew(ctx, "txA") }},
		{"Release", func() error { return s.Release(ctx, "txA") }},
	} {
		start := time.Now()
		err := op.fn()
		took := time.Since(start)
		t.Logf("%s with etcd stopped: %v after %v", op.name, err, took)
		if !errors.Is(err, etcdlease.ErrUnavailable) || took > bound {
			t.Errorf("%s with etcd stopped: %v after %v; want ErrUnavailable within %v", op.name, err, took, bound)
		}
	}
	// The caller's own deadline, if sooner, wins and is reported as such.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.Get(dctx, "a1"); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, etcdlease.ErrUnavailable) {
		t.Errorf("Get with a 100ms ctx and etcd stopped = %v, want the ctx's DeadlineExceeded", err)
	}
	start = time.Now()
	if _, err := etcdlease.New(ctx, etcdlease.Options{Client: c, MinTTL: testMinTTL, OpTimeout: time.Second}); !errors.Is(err, etcdlease.ErrUnavailable) || time.Since(start) > bound {
		t.Errorf("New with etcd stopped = %v after %v, want ErrUnavailable within %v", err, time.Since(start), bound)
	}

	start = time.Now()
	srv.start()
	t.Logf("etcd restarted in %v", time.Since(start))
	took, ok := eventually(20*time.Second, func() bool { _, err := s.Get(ctx, "a1"); return err == nil })
	if !ok {
		t.Fatalf("store not usable %v after etcd restarted", took)
	}
	t.Logf("store usable %v after the restart", took)
	for _, p := range []string{"b1", "b2"} {
		if !isFree(s, p) {
			t.Errorf("player %s of the Acquire refused while etcd was down is held after restart", p)
		}
	}
	for _, p := range []string{"a1", "a2"} {
		if l, err := s.Get(ctx, p); err != nil || l.TxID != "txA" || l.Token != before[0].Token || l.State != lease.Reserved {
			t.Errorf("after restart Get(%s) = %+v, %v; want txA's reservation, token %d", p, l, err, before[0].Token)
		}
	}
	if _, err := s.Acquire(ctx, "txB", []string{"b1", "b2"}, 2*time.Second); err != nil {
		t.Fatalf("Acquire after restart: %v", err)
	}
}

// Malformed calls return ErrInvalid before touching etcd: no key is written.
func TestInvalidInputWritesNothing(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	c := srv.client(t)
	prefix := uniquePrefix()
	s := newStore(t, c, etcdlease.Options{Prefix: prefix, MaxPlayers: 3})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		txid    string
		players []string
		ttl     time.Duration
	}{
		{"empty txid", "", []string{"p"}, time.Second},
		{"no players", "tx", nil, time.Second},
		{"empty player", "tx", []string{"p", ""}, time.Second},
		{"duplicate player", "tx", []string{"p", "q", "p"}, time.Second},
		{"zero ttl", "tx", []string{"p"}, 0},
		{"ttl below MinTTL", "tx", []string{"p"}, 999 * time.Millisecond},
		{"ttl above etcd's maximum", "tx", []string{"p"}, math.MaxInt64},
		{"more than MaxPlayers", "tx", []string{"p", "q", "r", "s"}, time.Second},
	} {
		if _, err := s.Acquire(ctx, tc.txid, tc.players, tc.ttl); !errors.Is(err, lease.ErrInvalid) {
			t.Errorf("Acquire with %s = %v, want ErrInvalid", tc.name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Acquire(cctx, "tx", []string{"p"}, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled ctx = %v, want context.Canceled", err)
	}
	if n := countKeys(t, c, prefix); n != 0 {
		t.Fatalf("refused calls wrote %d keys under %s", n, prefix)
	}
	for _, tc := range []struct {
		name string
		opts etcdlease.Options
	}{
		{"nil client", etcdlease.Options{}},
		{"session TTL below MinTTL", etcdlease.Options{Client: c, SessionTTL: time.Second, MinTTL: 2 * time.Second}},
		{"negative OpTimeout", etcdlease.Options{Client: c, OpTimeout: -time.Second}},
	} {
		if _, err := etcdlease.New(ctx, tc.opts); !errors.Is(err, lease.ErrInvalid) {
			t.Errorf("New with %s = %v, want ErrInvalid", tc.name, err)
		}
	}
}
