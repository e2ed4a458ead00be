// Package natsapitest runs a whole shardmatch deployment in one process, for tests of
// the coordinator's NATS API and of the clients that speak it: an embedded NATS server
// with JetStream in a temp dir, a coordinator.LocalCluster of real Raft nodes each
// serving through its own natsapi.Server and NATS connection, and shards behind the
// in-memory participant network (only the client ↔ coordinator path is over NATS).
//
// It is test code that ships, like net/http/httptest: it must never be imported by
// production code.
package natsapitest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsnode"
	"github.com/shardmatch/shardmatch/internal/natsembed"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// Options shape a Cluster. Zero values take the defaults.
type Options struct {
	Nodes  int    // coordinators (3)
	Shards int    // shards s1..sN, registered before Start returns (2)
	Prefix string // subject prefix ("sm")
	// Coordinator, if set, adjusts each node's config after the harness's defaults.
	Coordinator func(id string, c *coordinator.Config)
	// API, if set, adjusts each node's natsapi config.
	API func(id string, c *natsapi.Config)
	// Logger for the nodes and servers (nil discards).
	Logger *slog.Logger
	// ShardsOverNATS sends the coordinators' commands to shards over JetStream (the
	// natstransport protocol, each node on its own connection) instead of the
	// in-memory network. The harness then registers shards s1..sN but runs none: the
	// test runs real ones (shard.Start, natstransport.Serve), which may register again.
	ShardsOverNATS bool
}

// Cluster is a running deployment. Start makes one; it is shut down at test cleanup.
type Cluster struct {
	tb     testing.TB
	opts   Options
	dir    string
	NATS   *server.Server
	Net    *twophase.InmemNetwork
	lc     atomic.Pointer[coordinator.LocalCluster]
	mu     sync.Mutex // guards slots' conns during Kill and Restart
	slots  []*slot
	shards map[string]*Shard
}

// slot is one node position: its current connection and node assembly (the node, its
// transport to the shards, its API server), made afresh on every start.
type slot struct {
	id    string
	srv   atomic.Pointer[natsapi.Server] // stack's API server, nil while down
	nc    *nats.Conn                     // guarded by Cluster.mu, as is stack
	stack *natsnode.Assembly
}

// Start brings up NATS, the coordinators and their servers, registers the shards, and
// waits until a leader serves.
func Start(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Shards == 0 {
		o.Shards = 2
	}
	c := &Cluster{tb: tb, opts: o, dir: tb.TempDir(), shards: map[string]*Shard{}}
	s, err := natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: filepath.Join(c.dir, "nats"), ServerName: "natsapitest"})
	if err != nil {
		tb.Fatal(err)
	}
	c.NATS = s
	tb.Cleanup(c.shutdown)
	c.Net = twophase.NewInmemNetwork(twophase.InmemConfig{Seed: 1})
	var registered []string
	for i := 1; i <= o.Shards; i++ {
		id := fmt.Sprintf("s%d", i)
		registered = append(registered, id)
		if o.ShardsOverNATS {
			continue
		}
		sh := &Shard{ID: id, commits: map[string]int{}}
		p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: sh,
			Journal: twophase.NewMemJournal(), Clock: clock.NewReal()})
		if err != nil {
			tb.Fatal(err)
		}
		sh.Participant = p
		c.shards[id] = sh
		c.Net.AddShard(id, p)
	}
	for i := 0; i < o.Nodes; i++ {
		c.slots = append(c.slots, &slot{id: fmt.Sprintf("c%d", i+1)})
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		Nodes: o.Nodes, DataDir: filepath.Join(c.dir, "raft"), AttemptTimeout: 2 * time.Second,
		NewNode: c.newNode, Configure: c.configure,
	})
	if err != nil {
		tb.Fatal(err)
	}
	c.lc.Store(lc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range registered {
		if err := lc.OnLeader(ctx, func(n *coordinator.Node) error {
			return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: id, Region: "eu-west"})
		}); err != nil {
			tb.Fatalf("register %s: %v", id, err)
		}
	}
	c.WaitServing(ctx)
	return c
}

func (c *Cluster) configure(id string, cfg *coordinator.Config) {
	cfg.Clock = clock.NewReal()
	cfg.Logger = c.opts.Logger
	cfg.ResendInitial, cfg.ResendMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.Limits.DefaultPrepareTimeout = 2 * time.Second
	if c.opts.Coordinator != nil {
		c.opts.Coordinator(id, cfg)
	}
}

// newNode is LocalClusterConfig.NewNode: every time a node starts, a fresh
// connection and the node assembled on it by natsnode, its shard transport the
// in-memory network (or JetStream with ShardsOverNATS).
func (c *Cluster) newNode(cfg coordinator.Config, opts ...coordinator.Option) (*coordinator.Node, error) {
	sl := c.slotByID(cfg.NodeID)
	nc, err := nats.Connect(c.NATS.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		return nil, err
	}
	nn := natsnode.Config{Conn: nc, Prefix: c.opts.Prefix,
		Transport: natstransport.CoordinatorConfig{PubAckTimeout: time.Second, Logger: c.opts.Logger},
		API:       natsapi.Config{NodeID: sl.id, Logger: c.opts.Logger}}
	if !c.opts.ShardsOverNATS {
		id := cfg.NodeID
		nn.Shards = func(h twophase.ReplyHandler) (twophase.Transport, error) { return c.Net.Coordinator(id, h), nil }
	}
	if c.opts.API != nil {
		c.opts.API(sl.id, &nn.API)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := natsnode.New(ctx, nn, cfg, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.mu.Lock()
	sl.nc, sl.stack = nc, a
	c.mu.Unlock()
	sl.srv.Store(a.API)
	return a.Node, nil
}

func (c *Cluster) slotByID(id string) *slot {
	for _, s := range c.slots {
		if s.id == id {
			return s
		}
	}
	panic("natsapitest: no node " + id)
}

// stopAPI closes slot i's assembly (its node is down already) and connection.
func (c *Cluster) stopAPI(i int) {
	sl := c.slots[i]
	sl.srv.Store(nil)
	c.mu.Lock()
	a, nc := sl.stack, sl.nc
	sl.stack, sl.nc = nil, nil
	c.mu.Unlock()
	if a != nil {
		a.Close()
	}
	if nc != nil {
		nc.Close()
	}
}

func (c *Cluster) dial() *nats.Conn {
	c.tb.Helper()
	nc, err := nats.Connect(c.NATS.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		c.tb.Fatal(err)
	}
	return nc
}

// Connect opens a client connection, closed at cleanup.
func (c *Cluster) Connect() *nats.Conn {
	c.tb.Helper()
	nc := c.dial()
	c.tb.Cleanup(nc.Close)
	return nc
}

// Prefix is the subject prefix in use.
func (c *Cluster) Prefix() string { return c.opts.Prefix }

// LC is the coordinator cluster.
func (c *Cluster) LC() *coordinator.LocalCluster { return c.lc.Load() }

// Size is the number of coordinator positions.
func (c *Cluster) Size() int { return len(c.slots) }

// API returns node i's server (nil while the node is killed).
func (c *Cluster) API(i int) *natsapi.Server { return c.slots[i].srv.Load() }

// Node returns node i (nil while killed).
func (c *Cluster) Node(i int) *coordinator.Node { return c.LC().Node(i) }

// ShardIDs lists the shards, sorted.
func (c *Cluster) ShardIDs() []string {
	var ids []string
	for id := range c.shards {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Shard returns shard id.
func (c *Cluster) Shard(id string) *Shard { return c.shards[id] }

// WaitServing waits until a node leads and its server serves, and returns its index.
func (c *Cluster) WaitServing(ctx context.Context) int {
	c.tb.Helper()
	for {
		for i := range c.slots {
			n, srv := c.Node(i), c.API(i)
			if n != nil && srv != nil && n.IsLeader() && srv.Serving() {
				return i
			}
		}
		select {
		case <-ctx.Done():
			c.tb.Fatalf("no leader serving: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Kill stops node i abruptly and closes its server and connection.
func (c *Cluster) Kill(i int) {
	c.tb.Helper()
	if err := c.LC().Kill(i); err != nil {
		c.tb.Logf("kill %d: %v", i, err)
	}
	c.stopAPI(i)
}

// Restart starts node i again on its data, with a new server and connection.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if c.Node(i) != nil {
		return
	}
	if err := c.LC().Start(i); err != nil {
		c.tb.Fatal(err)
	}
}

// Txids returns the distinct txids the running nodes' FSMs hold for proposal pid.
func (c *Cluster) Txids(pid string) []string {
	seen := map[string]bool{}
	var out []string
	for i := range c.slots {
		n := c.Node(i)
		if n == nil {
			continue
		}
		if rec, ok := n.FSM().TxnByProposal(pid); ok && !seen[rec.GetTxid()] {
			seen[rec.GetTxid()] = true
			out = append(out, rec.GetTxid())
		}
	}
	sort.Strings(out)
	return out
}

func (c *Cluster) shutdown() {
	if lc := c.LC(); lc != nil {
		for i := range c.slots {
			_ = lc.Kill(i)
			c.stopAPI(i)
		}
	} else {
		for i := range c.slots {
			c.stopAPI(i)
		}
	}
	if c.Net != nil {
		_ = c.Net.Close()
	}
	natsembed.Shutdown(c.NATS)
}

// Shard is a simulated shard server: it votes YES for every player and counts what it
// applied, so tests can check that no transaction commits twice.
type Shard struct {
	ID          string
	Participant *twophase.Participant

	mu       sync.Mutex
	prepares int
	commits  map[string]int
}

// Prepare votes YES.
func (s *Shard) Prepare(_ context.Context, _ string, _ []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	s.mu.Lock()
	s.prepares++
	s.mu.Unlock()
	return nil, nil
}

// Commit records the commit.
func (s *Shard) Commit(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	s.mu.Lock()
	s.commits[txid]++
	s.mu.Unlock()
	return nil
}

// Abort does nothing: the shard holds no reservation of its own.
func (s *Shard) Abort(context.Context, string, []*smv1.ShardPlayer) error { return nil }

// Commits returns how many times each txid was committed on this shard.
func (s *Shard) Commits() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.commits))
	for k, v := range s.commits {
		out[k] = v
	}
	return out
}

var _ twophase.ShardHandler = (*Shard)(nil)

// Conn returns node i's NATS connection (nil while the node is down). Closing it
// cuts the node off from NATS as a network fault would.
func (c *Cluster) Conn(i int) *nats.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slots[i].nc
}
