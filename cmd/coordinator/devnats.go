package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsnode"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// devNATS is the NATS half of a dev stack: the embedded server with JetStream, and one
// slot per coordinator position holding the node's connection and its natsnode
// assembly (the node, its transport to the shards, its API server), made afresh each
// time the node (re)starts.
type devNATS struct {
	srv   *server.Server
	log   *slog.Logger
	sec   *devSecurity // nil unless --secure
	slots []*natsSlot
}

// natsSlot is one coordinator position's NATS parts, nil while its node is down.
type natsSlot struct {
	idx   int
	name  string
	mu    sync.Mutex
	nc    *nats.Conn
	stack *natsnode.Assembly
}

// startDevNATS starts the embedded server on a random loopback port with its file
// store in storeDir, and creates the streams.
// With sec the server runs in operator mode and every connection on its own role's
// credentials.
func startDevNATS(storeDir string, nodes int, sec *devSecurity, log *slog.Logger) (*devNATS, error) {
	ec := natsembed.EmbeddedConfig{StoreDir: storeDir, ServerName: "shardmatch-dev"}
	if sec != nil {
		ec.Configure = sec.configureServer
	}
	srv, err := natsembed.StartEmbedded(ec)
	if err != nil {
		return nil, err
	}
	d := &devNATS{srv: srv, log: log, sec: sec}
	nc, err := d.dial("shardmatch-dev-setup", natsauth.RoleCoordinator, "setup")
	if err != nil {
		natsembed.Shutdown(srv)
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{})
		cancel()
	}
	if err != nil {
		natsembed.Shutdown(srv)
		return nil, err
	}
	for i := 0; i < nodes; i++ {
		d.slots = append(d.slots, &natsSlot{idx: i, name: fmt.Sprintf("c%d", i+1)})
	}
	return d, nil
}

// URL is where clients connect.
func (d *devNATS) URL() string { return d.srv.ClientURL() }

// dial opens a connection that reconnects forever; with --secure it connects as
// identity id in role.
func (d *devNATS) dial(name string, role natsauth.Role, id string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}
	if d.sec != nil {
		auth, err := d.sec.dialOptions(role, id)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
	}
	return nats.Connect(d.URL(), opts...)
}

// newClient opens a connection (as id in role with --secure) and a client SDK on it.
func (d *devNATS) newClient(name string, role natsauth.Role, id string) (*nats.Conn, *client.Client, error) {
	nc, err := d.dial(name, role, id)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(client.Config{Conn: nc, Logger: d.log})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, c, nil
}

func (d *devNATS) slot(id string) *natsSlot {
	for _, s := range d.slots {
		if s.name == id {
			return s
		}
	}
	panic("coordinator dev: no node " + id)
}

// newNode is LocalClusterConfig.NewNode: each time a node starts, it gets a fresh
// connection (as coordinator-<id> with --secure) and is assembled on it by natsnode,
// with its transport to the shards and its API server.
func (d *devNATS) newNode(cfg coordinator.Config, opts ...coordinator.Option) (*coordinator.Node, error) {
	sl := d.slot(cfg.NodeID)
	nc, err := d.dial("shardmatch-dev-"+sl.name, natsauth.RoleCoordinator, sl.name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := natstransport.CoordinatorConfig{Logger: d.log, SkipEnsureStreams: true}
	if d.sec != nil {
		tc.Signer = d.sec.signer
	}
	a, err := natsnode.New(ctx, natsnode.Config{Conn: nc, Transport: tc,
		API: natsapi.Config{NodeID: sl.name, Logger: d.log, SkipEnsureStreams: true}}, cfg, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	sl.mu.Lock()
	sl.nc, sl.stack = nc, a
	sl.mu.Unlock()
	return a.Node, nil
}

// stopSlot closes slot i's node assembly and connection (the node is usually stopped
// already, by the cluster).
func (d *devNATS) stopSlot(i int) {
	sl := d.slots[i]
	sl.mu.Lock()
	a, nc := sl.stack, sl.nc
	sl.stack, sl.nc = nil, nil
	sl.mu.Unlock()
	if a != nil {
		a.Close()
	}
	if nc != nil {
		nc.Close()
	}
}

// slotAPI is slot i's API server, nil while its node is down.
func (d *devNATS) slotAPI(i int) *natsapi.Server {
	sl := d.slots[i]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.stack == nil {
		return nil
	}
	return sl.stack.API
}

// serving reports whether some node leads and its API server takes proposals.
func (d *devNATS) serving(lc *coordinator.LocalCluster) bool {
	for i := range d.slots {
		if n, api := lc.Node(i), d.slotAPI(i); n != nil && api != nil && n.IsLeader() && api.Serving() {
			return true
		}
	}
	return false
}

// startShard runs shard sh on its own connection (as shard-<id> with --secure) with
// shard.Start, its journal in dir.
func (d *devNATS) startShard(ctx context.Context, sh *devShard, dir string, o devOptions, clk clock.Clock) error {
	var err error
	if sh.nc, err = d.dial("shardmatch-dev-shard-"+sh.id, natsauth.RoleShard, sh.id); err != nil {
		return err
	}
	cfg := shard.Config{ID: sh.id, Conn: sh.nc, Game: sh.game, JournalPath: filepath.Join(dir, sh.id+".journal"),
		Region: sh.region, Capacity: o.players, Logger: d.log, Clock: clk, RegisterTimeout: 30 * time.Second}
	if d.sec != nil {
		cfg.Verifier = d.sec.verifier
	}
	if sh.sdk, err = shard.Start(ctx, cfg); err != nil {
		return err
	}
	sh.part, sh.journal = sh.sdk.Participant(), sh.sdk.Journal()
	return nil
}

// close stops every slot and the server. The nodes must be stopped already.
func (d *devNATS) close() {
	for i := range d.slots {
		d.stopSlot(i)
	}
	natsembed.Shutdown(d.srv)
}
