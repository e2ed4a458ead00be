package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// LocalCluster runs several coordinator nodes in one process: real Raft with durable
// bbolt log stores (BoltStore) under DataDir, connected by Raft's in-memory transport. It backs
// `coordinator dev`, the in-process cluster tests and the benchmarks, and it can kill,
// restart and partition nodes.
type LocalCluster struct {
	cfg   LocalClusterConfig
	mu    sync.Mutex
	nodes []*localNode
	peers []raft.Server
}

// LocalClusterConfig configures a LocalCluster.
type LocalClusterConfig struct {
	// Nodes is the number of coordinators (default 3).
	Nodes int
	// DataDir holds one sub-directory per node. Required.
	DataDir string
	// Participants returns the participant-transport factory for a node.
	Participants func(nodeID string) TransportFactory
	// AttemptTimeout bounds one Propose attempt on one node before the client tries
	// the next (default 3s).
	AttemptTimeout time.Duration
	// Configure, if set, adjusts each node's Config after the defaults and before start
	// (clock, observer, timeouts, policy).
	Configure func(nodeID string, c *Config)
	// Options, if set, are each node's Options (WithSabotage, for checker tests).
	Options func(nodeID string) []Option
	// NewNode, if set, makes each node (New when nil), every time it starts: a stack
	// that builds more than the node (natsnode: its NATS transport and API server)
	// hooks in here. Participants may then be nil, if NewNode sets it.
	NewNode func(cfg Config, opts ...Option) (*Node, error)
}

type localNode struct {
	id    string
	addr  raft.ServerAddress
	trans *raft.InmemTransport
	node  *Node
	cut   bool // partitioned from the other coordinators
}

// NewLocalCluster starts the nodes and bootstraps them as one cluster.
func NewLocalCluster(cfg LocalClusterConfig) (*LocalCluster, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.DataDir == "" || (cfg.Participants == nil && cfg.NewNode == nil) {
		return nil, errors.New("coordinator: LocalClusterConfig needs DataDir, and Participants or NewNode")
	}
	c := &LocalCluster{cfg: cfg}
	for i := 0; i < cfg.Nodes; i++ {
		id := fmt.Sprintf("c%d", i+1)
		c.nodes = append(c.nodes, &localNode{id: id, addr: raft.ServerAddress(id)})
		c.peers = append(c.peers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	for i := range c.nodes {
		if err := c.Start(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	return c, nil
}

func (c *LocalCluster) attempt() time.Duration {
	if c.cfg.AttemptTimeout > 0 {
		return c.cfg.AttemptTimeout
	}
	return 3 * time.Second
}

// Size is the number of nodes, running or not.
func (c *LocalCluster) Size() int { return len(c.nodes) }

// Node returns node i, or nil while it is stopped.
func (c *LocalCluster) Node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// NodeID returns node i's id.
func (c *LocalCluster) NodeID(i int) string { return c.nodes[i].id }

// Start starts (or restarts, on its old data) node i.
func (c *LocalCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.node != nil {
		return nil
	}
	_, n.trans = raft.NewInmemTransport(n.addr)
	n.cut = false
	for _, o := range c.nodes {
		if o != n && o.node != nil && !o.cut {
			n.trans.Connect(o.addr, o.trans)
			o.trans.Connect(n.addr, n.trans)
		}
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftTransport = n.id, filepath.Join(c.cfg.DataDir, n.id), n.trans
	cfg.Bootstrap, cfg.Peers = true, c.peers
	if c.cfg.Participants != nil {
		cfg.Participants = c.cfg.Participants(n.id)
	}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 150*time.Millisecond, 150*time.Millisecond, 100*time.Millisecond
	if c.cfg.Configure != nil {
		c.cfg.Configure(n.id, &cfg)
	}
	var opts []Option
	if c.cfg.Options != nil {
		opts = c.cfg.Options(n.id)
	}
	newNode := New
	if c.cfg.NewNode != nil {
		newNode = c.cfg.NewNode
	}
	node, err := newNode(cfg, opts...)
	if err != nil {
		return fmt.Errorf("coordinator: start %s: %w", n.id, err)
	}
	n.node = node
	return nil
}

// Kill stops node i abruptly: no leadership transfer, connections cut.
func (c *LocalCluster) Kill(i int) error {
	c.mu.Lock()
	n := c.nodes[i]
	node := n.node
	if node == nil {
		c.mu.Unlock()
		return nil
	}
	for _, o := range c.nodes {
		if o != n && o.trans != nil {
			o.trans.Disconnect(n.addr)
		}
	}
	n.trans.DisconnectAll()
	n.node = nil
	c.mu.Unlock()
	return node.Shutdown()
}

// Partition cuts node i off from the other coordinators (the participant network is
// the caller's to cut).
func (c *LocalCluster) Partition(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	n.cut = true
	for _, o := range c.nodes {
		if o != n && o.trans != nil {
			o.trans.Disconnect(n.addr)
			if n.trans != nil {
				n.trans.Disconnect(o.addr)
			}
		}
	}
}

// Heal reconnects every running node to every other.
func (c *LocalCluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.nodes {
		a.cut = false
		for _, b := range c.nodes {
			if a != b && a.node != nil && b.node != nil {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// Shutdown stops every node.
func (c *LocalCluster) Shutdown() {
	for i := range c.nodes {
		_ = c.Kill(i)
	}
}

// Leader waits for a node that leads and has finished taking over, and returns its
// index.
func (c *LocalCluster) Leader(ctx context.Context) (int, *Node, error) {
	for {
		for i := range c.nodes {
			if n := c.Node(i); n != nil && n.IsLeader() {
				return i, n, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, nil, fmt.Errorf("coordinator: no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Propose sends p to whichever node leads, as a client SDK does: on "not leader" or an
// unknown outcome it retries the same proposal id elsewhere until ctx ends, so it never
// creates a second transaction. Invalid proposals fail at once.
func (c *LocalCluster) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	var d *smv1.Decision
	err := c.OnLeader(ctx, func(n *Node) error {
		actx, cancel := context.WithTimeout(ctx, c.attempt())
		defer cancel()
		var err error
		d, err = n.Propose(actx, p)
		return err
	})
	if err != nil && !errors.Is(err, ErrInvalid) {
		return nil, &UnknownOutcomeError{ProposalID: p.GetProposalId(), Cause: err}
	}
	return d, err
}

// OnLeader runs f on the nodes in turn until one succeeds or fails for a reason other
// than "not leader", "closed" or an unknown outcome. f must be idempotent.
func (c *LocalCluster) OnLeader(ctx context.Context, f func(*Node) error) error {
	var err error
	for ctx.Err() == nil {
		for i := range c.nodes {
			n := c.Node(i)
			if n == nil {
				continue
			}
			err = f(n)
			// A node killed mid-call answers ErrClosed: try the next one.
			if err == nil || !(errors.Is(err, ErrNotLeader) || errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrClosed)) {
				return err
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// Outcome answers a recovering participant's question about txid from the leader; it
// implements twophase.OutcomeQuerier.
func (c *LocalCluster) Outcome(ctx context.Context, txid string) (smv1.Outcome, error) {
	out := smv1.Outcome_OUTCOME_PENDING
	err := c.OnLeader(ctx, func(n *Node) error {
		rec, err := n.Status(ctx, txid)
		if err != nil {
			return err
		}
		if o := rec.GetDecision().GetOutcome(); o != smv1.Outcome_OUTCOME_UNSPECIFIED {
			out = o
		}
		return nil
	})
	return out, err
}

var _ twophase.OutcomeQuerier = (*LocalCluster)(nil)
