package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// devAdmin serves every dev node's admin API, console included, on its own port:
// --admin-addr's for the first node, the next ports for the others. Operator actions
// need no token (dev only). A node killed by --chaos-kill-leader-every answers 503
// until it is back.
type devAdmin struct {
	log     *slog.Logger
	urls    []string
	metrics map[string]*admin.Metrics // by node id
	https   []*http.Server

	mu      sync.Mutex
	lc      *coordinator.LocalCluster
	servers []*admin.Server // by node index; nil while the node is down
}

// startDevAdmin listens for n nodes from addr on (port 0: any free ports).
func startDevAdmin(addr string, n int, log *slog.Logger) (*devAdmin, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr %q: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535-n {
		return nil, fmt.Errorf("--admin-addr %q: port %q is not a number in [0, %d]", addr, portStr, 65535-n)
	}
	d := &devAdmin{log: log, metrics: map[string]*admin.Metrics{}, servers: make([]*admin.Server, n)}
	for i := range n {
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			d.close()
			return nil, fmt.Errorf("admin API of node c%d: %w", i+1, err)
		}
		d.urls = append(d.urls, "http://"+ln.Addr().String())
		srv := adminHTTPServer(d.handler(i), log)
		d.https = append(d.https, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("dev admin API stopped", "node", i, "err", err)
			}
		}()
		id := "c" + strconv.Itoa(i+1)
		if d.metrics[id], err = admin.NewMetrics(admin.MetricsConfig{NodeID: id}); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

// handler serves node i's current admin server, or 503 while the node is down.
func (d *devAdmin) handler(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		srv := d.servers[i]
		d.mu.Unlock()
		if srv == nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf(`{"error":{"code":"UNAVAILABLE","message":"node c%d is down (restarting)"}}`, i+1), http.StatusServiceUnavailable)
			return
		}
		srv.Handler().ServeHTTP(w, r)
	})
}

// configure feeds node id's metrics from its decisions and phases.
func (d *devAdmin) configure(id string, c *coordinator.Config) {
	m := d.metrics[id]
	if m == nil {
		return
	}
	prev := c.OnDecided
	c.OnDecided = func(dec *smv1.Decision) {
		if prev != nil {
			prev(dec)
		}
		m.ObserveDecision(dec)
	}
	c.OnPhase = func(phase string, t time.Duration) { m.ObservePhase(admin.Phase(phase), t) }
}

// addPolicy exports the shared policy engine's counters on every node.
func (d *devAdmin) addPolicy(eng *policy.Engine) error {
	for _, m := range d.metrics {
		if err := m.AddPolicy(eng.Stats); err != nil {
			return err
		}
	}
	return nil
}

// attach serves node i of lc (after a start or a restart).
func (d *devAdmin) attach(lc *coordinator.LocalCluster, i int) error {
	n := lc.Node(i)
	if n == nil {
		return nil
	}
	srv, err := admin.New(admin.Config{Node: n, Metrics: d.metrics[n.ID()], Logger: d.log, AllowUnauthenticated: true,
		AdvertiseURL: d.urls[i], LeaderIndex: admin.LeaderIndexFunc(d.leaderIndex)})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.lc = lc
	old := d.servers[i]
	d.servers[i] = srv
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// detach stops serving node i (killed).
func (d *devAdmin) detach(i int) {
	d.mu.Lock()
	old := d.servers[i]
	d.servers[i] = nil
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// leaderIndex is what serve's nodes ask the leader over NATS, read in process.
func (d *devAdmin) leaderIndex(context.Context) (admin.LeaderIndex, error) {
	d.mu.Lock()
	lc := d.lc
	d.mu.Unlock()
	if lc == nil {
		return admin.LeaderIndex{}, errors.New("dev: no cluster yet")
	}
	for i := range lc.Size() {
		if n := lc.Node(i); n != nil && n.IsLeader() {
			return admin.LeaderIndex{NodeID: n.ID(), Term: n.Raft().CurrentTerm(), CommitIndex: n.Raft().CommitIndex(), AdminURL: d.urls[i]}, nil
		}
	}
	return admin.LeaderIndex{}, errors.New("dev: no leader")
}

func (d *devAdmin) close() {
	for _, h := range d.https {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = h.Shutdown(ctx)
		cancel()
	}
	for i := range d.servers {
		d.detach(i)
	}
}
