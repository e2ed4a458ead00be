package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// devNATS is the NATS half of a dev stack: the embedded server with JetStream, and one
// slot per coordinator position holding the node's connection, its participant
// transport and its API server. A slot's parts are made before its node starts (so the
// node's first leadership reaches its server) and replaced when the node restarts.
type devNATS struct {
	srv   *server.Server
	log   *slog.Logger
	sec   *devSecurity                             // nil unless --secure
	lc    atomic.Pointer[coordinator.LocalCluster] // set once the cluster exists
	slots []*natsSlot
}

// natsSlot is one coordinator position. Lock order: mu only; the atomics are read by
// the node's callbacks without it.
type natsSlot struct {
	idx     int
	name    string
	mu      sync.Mutex // guards nc and tr during start and stop
	nc      *nats.Conn
	tr      *natstransport.Coordinator
	api     atomic.Pointer[natsapi.Server]
	replies atomic.Pointer[twophase.ReplyHandler] // the running node's reply handler
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

// startSlot gives slot i a fresh connection, participant transport and API server.
func (d *devNATS) startSlot(i int) error {
	sl := d.slots[i]
	nc, err := d.dial("shardmatch-dev-"+sl.name, natsauth.RoleCoordinator, sl.name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := natstransport.CoordinatorConfig{Conn: nc, Logger: d.log,
		SkipEnsureStreams: true, Replies: func(r *smv1.ShardReply) {
			if h := sl.replies.Load(); h != nil {
				(*h)(r)
			}
		}}
	if d.sec != nil {
		cc.Signer = d.sec.signer
	}
	tr, err := natstransport.NewCoordinator(ctx, cc)
	if err != nil {
		nc.Close()
		return err
	}
	api, err := natsapi.New(natsapi.Config{Node: d.nodeAt(i), NodeID: sl.name, Conn: nc, Logger: d.log,
		SkipEnsureStreams: true})
	if err != nil {
		_ = tr.Close()
		nc.Close()
		return err
	}
	sl.mu.Lock()
	sl.nc, sl.tr = nc, tr
	sl.mu.Unlock()
	sl.api.Store(api)
	return nil
}

// stopSlot closes slot i's API server, transport and connection (its node is already
// stopped).
func (d *devNATS) stopSlot(i int) {
	sl := d.slots[i]
	if api := sl.api.Swap(nil); api != nil {
		_ = api.Close()
	}
	sl.replies.Store(nil)
	sl.mu.Lock()
	nc, tr := sl.nc, sl.tr
	sl.nc, sl.tr = nil, nil
	sl.mu.Unlock()
	if tr != nil {
		_ = tr.Close()
	}
	if nc != nil {
		nc.Close()
	}
}

// participants is LocalClusterConfig.Participants: the node gets its slot's transport,
// and its reply handler is installed behind the transport's.
func (d *devNATS) participants(id string) func(twophase.ReplyHandler) twophase.Transport {
	sl := d.slot(id)
	return func(h twophase.ReplyHandler) twophase.Transport {
		sl.replies.Store(&h)
		sl.mu.Lock()
		defer sl.mu.Unlock()
		return sl.tr
	}
}

// configure wires node id's leadership and decisions to its slot's API server.
func (d *devNATS) configure(id string, c *coordinator.Config) {
	sl := d.slot(id)
	c.OnLeadership = func(leading bool, term uint64) {
		if api := sl.api.Load(); api != nil {
			api.Leading(leading, term)
		}
	}
	c.OnDecided = func(dec *smv1.Decision) {
		if api := sl.api.Load(); api != nil {
			api.Decided(dec)
		}
	}
}

// serving reports whether some node leads and its API server takes proposals.
func (d *devNATS) serving() bool {
	lc := d.lc.Load()
	for i, sl := range d.slots {
		if n, api := lc.Node(i), sl.api.Load(); n != nil && api != nil && n.IsLeader() && api.Serving() {
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

// nodeAt is natsapi.Node for whatever node runs in position i: a slot's server is made
// before its node (re)starts.
func (d *devNATS) nodeAt(i int) natsapi.Node {
	return natsapi.NodeLookup(func() (*coordinator.Node, error) {
		if lc := d.lc.Load(); lc != nil {
			if n := lc.Node(i); n != nil {
				return n, nil
			}
		}
		return nil, &coordinator.NotLeaderError{}
	})
}
