// Package natsnode assembles one coordinator node on NATS, the same way for
// `coordinator serve`, `coordinator dev` and the test harnesses: the node first, with
// its transport to the shards made by the node's TransportFactory (JetStream commands
// on the node's connection, replies to the node), then the node's NATS API server,
// which Node.Listen tells of a leadership the node may already hold. Nothing forwards
// to a part not made yet, and Close takes them down in the reverse order.
package natsnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// Config is what one node needs beyond its own coordinator.Config.
type Config struct {
	// Conn is the node's NATS connection, shared by its transport and its API server.
	// The assembly does not close it.
	Conn *nats.Conn
	// Prefix of the subjects (natsutil.DefaultPrefix if empty); it overrides the
	// prefixes of Transport and API.
	Prefix string
	// Transport shapes the JetStream transport to the shards; its Conn, Prefix and
	// Replies are filled in.
	Transport natstransport.CoordinatorConfig
	// Shards, if set, replaces that transport (an in-memory network in tests).
	Shards coordinator.TransportFactory
	// API shapes the NATS API server; its Node, Conn and Prefix are filled in, and
	// StepDown and CommitIndex default to the node's.
	API natsapi.Config
}

// Assembly is a running node with its transport and API server.
type Assembly struct {
	Node      *coordinator.Node
	API       *natsapi.Server
	Transport *natstransport.Coordinator // nil with Config.Shards
	unlisten  func()
}

// New builds the node from node and opts (its Participants set here), then its API
// server. ctx bounds the transport's start. On error nothing is left running.
func New(ctx context.Context, cfg Config, node coordinator.Config, opts ...coordinator.Option) (_ *Assembly, err error) {
	if cfg.Conn == nil {
		return nil, errors.New("natsnode: Config.Conn is nil")
	}
	a := &Assembly{}
	node.Participants = cfg.Shards
	if node.Participants == nil {
		node.Participants = func(h twophase.ReplyHandler) (twophase.Transport, error) {
			tc := cfg.Transport
			tc.Conn, tc.Prefix, tc.Replies = cfg.Conn, cfg.Prefix, h
			tr, err := natstransport.NewCoordinator(ctx, tc)
			if err != nil {
				return nil, fmt.Errorf("natsnode: transport to shards: %w", err)
			}
			a.Transport = tr
			return tr, nil
		}
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.Node, err = coordinator.New(node, opts...); err != nil {
		return nil, err
	}
	n := a.Node
	if a.Transport != nil {
		// Shards registered with command_batches get several commands per message.
		a.Transport.SetBatches(n.FSM().ShardTakesBatches)
	}
	ac := cfg.API
	ac.Node, ac.Conn, ac.Prefix = n, cfg.Conn, cfg.Prefix
	if ac.StepDown == nil {
		ac.StepDown = n.TransferLeadership
	}
	if ac.CommitIndex == nil && ac.NodeID != "" {
		ac.CommitIndex = func() uint64 { return n.Raft().CommitIndex() }
	}
	if a.API, err = natsapi.New(ac); err != nil {
		return nil, fmt.Errorf("natsnode: nats api: %w", err)
	}
	a.unlisten = n.Listen(a.API)
	return a, nil
}

// Close stops the node, then its API server and transport. It is safe to call more
// than once, and on a node a LocalCluster already killed.
func (a *Assembly) Close() {
	if a.Node != nil {
		_ = a.Node.Shutdown()
	}
	if a.unlisten != nil {
		a.unlisten()
		a.unlisten = nil
	}
	if a.API != nil {
		_ = a.API.Close()
	}
	if a.Transport != nil {
		_ = a.Transport.Close()
	}
}
