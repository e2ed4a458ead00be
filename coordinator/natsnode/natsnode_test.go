package natsnode_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsnode"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/twophase"
)

// A one-node cluster assembled by natsnode serves its NATS API once it leads (the API
// server was made after the node and told by Listen); Close is idempotent; a node
// whose API server cannot be built is shut down, not leaked.
func TestAssembly(t *testing.T) {
	nc, _ := natstest.Connect(t, natstest.Start(t))
	var stack *natsnode.Assembly
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{Nodes: 1, DataDir: filepath.Join(t.TempDir(), "raft"),
		NewNode: func(cfg coordinator.Config, opts ...coordinator.Option) (*coordinator.Node, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := natsnode.New(ctx, natsnode.Config{Conn: nc, API: natsapi.Config{NodeID: cfg.NodeID}}, cfg, opts...)
			if err != nil {
				return nil, err
			}
			stack = a
			return a.Node, nil
		},
		Configure: func(_ string, c *coordinator.Config) { c.Clock = clock.NewReal() }})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 30*time.Second, "the API server serving", func() bool { return stack.API.Serving() })
	if stack.Transport == nil {
		t.Error("no JetStream transport was made")
	}
	lc.Shutdown()
	stack.Close()
	stack.Close()
	if stack.API.Serving() {
		t.Error("still serving after Close")
	}

	// Bad settings: no connection; an API config natsapi refuses (CommitIndex needs a
	// NodeID). The node made before the API failed is shut down: its data directory
	// opens again at once.
	dir := t.TempDir()
	base := coordinator.DefaultConfig()
	base.NodeID, base.DataDir, base.Bootstrap, base.Clock = "n1", dir, true, clock.NewReal()
	addr, trans := raft.NewInmemTransport("")
	base.RaftTransport = trans
	base.Peers = []raft.Server{{ID: "n1", Address: addr}}
	if _, err := natsnode.New(context.Background(), natsnode.Config{}, base); err == nil {
		t.Error("no Conn accepted")
	}
	bad := natsnode.Config{Conn: nc, Shards: inmemShards, API: natsapi.Config{CommitIndex: func() uint64 { return 0 }}}
	if _, err := natsnode.New(context.Background(), bad, base); err == nil {
		t.Fatal("an invalid API config accepted")
	}
	good := natsnode.Config{Conn: nc, Shards: inmemShards}
	a, err := natsnode.New(context.Background(), good, base)
	if err != nil {
		t.Fatalf("the data directory after a failed assembly: %v", err)
	}
	a.Close()
}

var inmemShards coordinator.TransportFactory = func(h twophase.ReplyHandler) (twophase.Transport, error) {
	return twophase.NewInmemNetwork(twophase.InmemConfig{}).Coordinator("n1", h), nil
}
