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
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// devNATS is the NATS half of a dev stack: the embedded server with JetStream, and one
// slot per coordinator position holding the node's connection, its transport to the
// shards and its API server. They are made in dependency order each time the node
// (re)starts: the connection and transport by the node's TransportFactory, the API
// server after the node (attach), which the node's Listen tells of a leadership it
// may already hold.
type devNATS struct {
	srv   *server.Server
	log   *slog.Logger
	sec   *devSecurity // nil unless --secure
	slots []*natsSlot
}

// natsSlot is one coordinator position's NATS parts, nil while its node is down.
type natsSlot struct {
	idx        int
	name       string
	mu         sync.Mutex
	nc         *nats.Conn
	tr         *natstransport.Coordinator
	api        *natsapi.Server
	stopListen func()
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

// participants is LocalClusterConfig.Participants: each time node id starts, it gets
// a fresh connection and a transport to the shards that hands replies to the node.
func (d *devNATS) participants(id string) coordinator.TransportFactory {
	sl := d.slot(id)
	return func(h twophase.ReplyHandler) (twophase.Transport, error) {
		nc, err := d.dial("shardmatch-dev-"+sl.name, natsauth.RoleCoordinator, sl.name)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc := natstransport.CoordinatorConfig{Conn: nc, Logger: d.log, SkipEnsureStreams: true, Replies: h}
		if d.sec != nil {
			cc.Signer = d.sec.signer
		}
		tr, err := natstransport.NewCoordinator(ctx, cc)
		if err != nil {
			nc.Close()
			return nil, err
		}
		sl.mu.Lock()
		sl.nc, sl.tr = nc, tr
		sl.mu.Unlock()
		return tr, nil
	}
}

// attach gives the node running in slot i its API server, on the slot's connection.
func (d *devNATS) attach(i int, n *coordinator.Node) error {
	sl := d.slots[i]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	api, err := natsapi.New(natsapi.Config{Node: n, NodeID: sl.name, Conn: sl.nc, Logger: d.log, SkipEnsureStreams: true})
	if err != nil {
		return err
	}
	sl.api, sl.stopListen = api, n.Listen(api)
	return nil
}

// stopSlot closes slot i's API server, transport and connection (its node is already
// stopped).
func (d *devNATS) stopSlot(i int) {
	sl := d.slots[i]
	sl.mu.Lock()
	api, stop, nc, tr := sl.api, sl.stopListen, sl.nc, sl.tr
	sl.api, sl.stopListen, sl.nc, sl.tr = nil, nil, nil, nil
	sl.mu.Unlock()
	if stop != nil {
		stop()
	}
	if api != nil {
		_ = api.Close()
	}
	if tr != nil {
		_ = tr.Close()
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
	return sl.api
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
