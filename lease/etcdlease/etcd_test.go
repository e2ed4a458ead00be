package etcdlease_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/etcdlease"
	"github.com/shardmatch/shardmatch/lease/leasetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Timings of the embedded server. A 50ms tick and 500ms election timeout give etcd a
// minimum lease TTL of ⌈1.5 × 500ms⌉ = 1s, so the suite can use 1s TTLs.
const (
	tickMs      = 50
	electionMs  = 500
	testMinTTL  = time.Second
	testOpLimit = time.Second // OpTimeout of the tests' stores
	// commitLatency bounds a revoke proposal's commit and apply on the embedded
	// single-member server, generously for -race on a loaded 2-core machine.
	commitLatency = 500 * time.Millisecond
)

// etcdServer is one embedded single-member etcd on random localhost ports, in a
// t.TempDir, restartable on the same ports and data.
type etcdServer struct {
	tb         testing.TB
	dir        string
	cURL, pURL url.URL
	mu         sync.Mutex
	e          *embed.Etcd
}

func freeURL(tb testing.TB) url.URL {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

// startEtcd starts a server and stops it when tb ends.
func startEtcd(tb testing.TB) *etcdServer {
	tb.Helper()
	s := &etcdServer{tb: tb, dir: tb.TempDir(), cURL: freeURL(tb), pURL: freeURL(tb)}
	s.start()
	tb.Cleanup(s.stop)
	return s
}

func (s *etcdServer) start() {
	s.tb.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "etcdlease-test"
	cfg.Dir = s.dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{s.cURL}, []url.URL{s.cURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{s.pURL}, []url.URL{s.pURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = tickMs, electionMs
	// Shutdown logs "server closed" errors; the tests check outcomes, not logs.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		s.tb.Fatalf("start embedded etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		s.tb.Fatal("embedded etcd not ready after 30s")
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
}

// stop stops the server if it runs; start brings it back on the same ports and data.
func (s *etcdServer) stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// client returns a new client of the server, closed when tb ends.
func (s *etcdServer) client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.cURL.String()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

var prefixSeq atomic.Int64

// uniquePrefix is a key prefix no other store of this test binary uses.
func uniquePrefix() string { return fmt.Sprintf("/test/%d", prefixSeq.Add(1)) }

// newStore returns a store on c under a fresh prefix (unless opts sets one), closed
// when tb ends.
func newStore(tb testing.TB, c *clientv3.Client, opts etcdlease.Options) *etcdlease.Store {
	tb.Helper()
	opts.Client = c
	if opts.Prefix == "" {
		opts.Prefix = uniquePrefix()
	}
	if opts.MinTTL == 0 {
		opts.MinTTL = testMinTTL
	}
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpLimit
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 5 * time.Second
	}
	s, err := etcdlease.New(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// suiteTTL is the harness TTL: etcd counts whole seconds, and 1s keeps the timing
// checks (which really sleep) to about 20s in all.
const suiteTTL = time.Second

// harness runs the conformance suite against stores made by mk on srv. Advance is a
// real sleep: etcd's leader measures the leases.
func harness(srv *etcdServer, mk func(t *testing.T, c *clientv3.Client) lease.Store) leasetest.Harness {
	return harnessOn(func(t *testing.T) *clientv3.Client { return srv.client(t) }, commitLatency, mk)
}

// harnessOn runs the conformance suite against stores made by mk on clients from
// newClient, allowing commit for a revoke proposal to commit.
func harnessOn(newClient func(t *testing.T) *clientv3.Client, commit time.Duration,
	mk func(t *testing.T, c *clientv3.Client) lease.Store) leasetest.Harness {
	return leasetest.Harness{
		New: func(t *testing.T) lease.Store { return mk(t, newClient(t)) },
		Advance: func(_ *testing.T, d time.Duration) {
			time.Sleep(d)
		},
		Rho:         etcdlease.Rho,
		TTL:         suiteTTL,
		ExpirySlack: etcdlease.ExpirySlack(suiteTTL, commit),
		Timeout:     time.Minute,
	}
}

func TestConformance(t *testing.T) {
	srv := startEtcd(t)
	leasetest.Run(t, harness(srv, func(t *testing.T, c *clientv3.Client) lease.Store {
		return newStore(t, c, etcdlease.Options{})
	}))
}

// eventually polls cond every 10ms until it holds or limit passes; it returns how long
// that took and whether cond held.
func eventually(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isFree(s lease.Store, player string) bool {
	_, err := s.Get(context.Background(), player)
	return errors.Is(err, lease.ErrNotFound)
}
