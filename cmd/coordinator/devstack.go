package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/clock"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
)

// devStack is the deployment `coordinator dev` runs in one process: coordinator nodes
// with real Raft, the in-memory participant network, shards (a World behind a
// Participant with a bbolt journal) and the policy engine.
type devStack struct {
	dir, tempDir string // tempDir is removed at close
	clk          clock.Clock
	net          *twophase.InmemNetwork
	lc           *coordinator.LocalCluster
	shards       []*devShard
	stopWatch    context.CancelFunc
}

type devShard struct {
	id      string
	world   *shardsvc.World
	journal *twophase.BoltJournal
	part    *twophase.Participant
}

// devRegions are the shards' regions in turn: two in eu-west, one in us-east.
var devRegions = []string{"eu-west", "eu-west", "us-east"}

func startDevStack(ctx context.Context, o devOptions, log *slog.Logger) (_ *devStack, err error) {
	s := &devStack{dir: o.data, clk: clock.NewReal(), stopWatch: func() {}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "shardmatch-dev-"); err != nil {
			return s, err
		}
		s.tempDir = s.dir
	} else if err = os.MkdirAll(s.dir, 0o755); err != nil {
		return s, err
	}
	s.net = twophase.NewInmemNetwork(twophase.InmemConfig{Seed: o.seed, Clock: s.clk})
	for i := 0; i < o.shards; i++ {
		if err = s.addShard(fmt.Sprintf("s%d", i+1), devRegions[i%len(devRegions)], o, log); err != nil {
			return s, err
		}
	}
	var pol coordinator.Policy
	if !o.noPolicy {
		eng, err := policy.New(policy.Config{BundleDir: o.policyBundle, EvalTimeout: o.policyTimeout, Logger: log, Clock: s.clk})
		if err != nil {
			return s, err
		}
		if o.policyBundle != "" { // hot reload on file change and SIGHUP
			var wctx context.Context
			wctx, s.stopWatch = context.WithCancel(context.Background())
			go func() { _ = eng.Watch(wctx) }()
		}
		pol = eng
	}
	s.lc, err = coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		Nodes: o.nodes, DataDir: s.dir, AttemptTimeout: 2 * time.Second,
		Participants: func(id string) func(twophase.ReplyHandler) twophase.Transport {
			return func(h twophase.ReplyHandler) twophase.Transport { return s.net.Coordinator(id, h) }
		},
		Configure: func(_ string, c *coordinator.Config) {
			c.Clock, c.Logger, c.Policy = s.clk, log, pol
		},
	})
	if err != nil {
		return s, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, sh := range s.shards {
		info := &smv1.ShardInfo{ShardId: sh.id, Region: sh.world.Region(), Capacity: int32(o.players), ProtocolVersion: 1}
		if err = s.lc.OnLeader(rctx, func(n *coordinator.Node) error { return n.RegisterShard(rctx, info) }); err != nil {
			return s, fmt.Errorf("register shard %s: %w", sh.id, err)
		}
		// Transactions left in doubt by an earlier run on the same --data.
		if err := sh.part.Recover(rctx, s.lc); err != nil {
			log.Warn("shard recovery incomplete; redelivery will finish it", "shard", sh.id, "err", err)
		}
	}
	return s, nil
}

func (s *devStack) addShard(id, region string, o devOptions, log *slog.Logger) error {
	wc := shardsvc.DefaultWorldConfig()
	wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = id, region, o.players, o.matchTTL, s.clk, o.seed
	w, err := shardsvc.NewWorld(wc)
	if err != nil {
		return err
	}
	j, err := twophase.OpenBoltJournal(filepath.Join(s.dir, id+".journal"))
	if err != nil {
		return err
	}
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: w, Journal: j, Clock: s.clk, Logger: log})
	if err != nil {
		_ = j.Close()
		return err
	}
	w.SetFencer(p)
	s.shards = append(s.shards, &devShard{id: id, world: w, journal: j, part: p})
	s.net.AddShard(id, p)
	return nil
}

func (s *devStack) worlds() []*shardsvc.World {
	out := make([]*shardsvc.World, len(s.shards))
	for i, sh := range s.shards {
		out[i] = sh.world
	}
	return out
}

// leader names the node leading now, "" if none.
func (s *devStack) leader() string {
	for i := 0; i < s.lc.Size(); i++ {
		if n := s.lc.Node(i); n != nil && n.IsLeader() {
			return n.ID()
		}
	}
	return ""
}

// settled reports whether there is a leader, every running node has applied the same
// log with no transaction unfinished, and no shard holds a transaction in doubt.
func (s *devStack) settled() bool {
	var idx uint64
	for i := 0; i < s.lc.Size(); i++ {
		n := s.lc.Node(i)
		if n == nil {
			continue
		}
		if len(n.FSM().Unfinished()) > 0 || (idx != 0 && n.FSM().AppliedIndex() != idx) {
			return false
		}
		idx = n.FSM().AppliedIndex()
	}
	for _, sh := range s.shards {
		if len(sh.part.InDoubt()) > 0 {
			return false
		}
	}
	return s.leader() != ""
}

// settle waits, at most timeout, until settled.
func (s *devStack) settle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !s.settled() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// auditInput collects what every shard and every running node holds.
func (s *devStack) auditInput() (shardsvc.AuditInput, error) {
	var in shardsvc.AuditInput
	for _, sh := range s.shards {
		entries, err := sh.journal.List()
		if err != nil {
			return in, fmt.Errorf("journal of %s: %w", sh.id, err)
		}
		snap := sh.world.Snapshot()
		in.Shards = append(in.Shards, shardsvc.ShardView{ID: sh.id, Journal: entries, World: &snap})
	}
	for i := 0; i < s.lc.Size(); i++ {
		if n := s.lc.Node(i); n != nil {
			in.Nodes = append(in.Nodes, shardsvc.NodeView{ID: n.ID(), State: n.FSM().State()})
		}
	}
	return in, nil
}

// killLeaders kills the leader every period and restarts it a little later, until
// ctx ends; the channel then yields the number of kills, once every node runs again.
func (s *devStack) killLeaders(ctx context.Context, every time.Duration, log *slog.Logger) <-chan int {
	out := make(chan int, 1)
	go func() {
		kills := 0
		defer func() { out <- kills }()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			i, _, err := s.lc.Leader(lctx)
			cancel()
			if err != nil {
				continue
			}
			log.Warn("chaos: killing the leader", "node", s.lc.NodeID(i))
			_ = s.lc.Kill(i)
			kills++
			select {
			case <-ctx.Done():
			case <-time.After(min(every/2, 2*time.Second)):
			}
			if err := s.lc.Start(i); err != nil {
				log.Error("chaos: restarting node", "node", s.lc.NodeID(i), "err", err)
			}
		}
	}()
	return out
}

func (s *devStack) close() {
	s.stopWatch()
	if s.lc != nil {
		s.lc.Shutdown()
	}
	if s.net != nil {
		_ = s.net.Close()
	}
	for _, sh := range s.shards {
		_ = sh.journal.Close()
	}
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// clusterProposer is the load driver's view of the LocalCluster: every call goes to
// whichever node leads, retried elsewhere on "not leader".
type clusterProposer struct{ lc *coordinator.LocalCluster }

var _ shardsvc.Proposer = clusterProposer{}

func (p clusterProposer) Propose(ctx context.Context, prop *smv1.Proposal) (*smv1.Decision, error) {
	return p.lc.Propose(ctx, prop)
}

func (p clusterProposer) Renew(ctx context.Context, txid string) error {
	return p.onLeader(ctx, func(ctx context.Context, n *coordinator.Node) error { return n.Renew(ctx, txid) })
}

func (p clusterProposer) Release(ctx context.Context, txid string) error {
	return p.onLeader(ctx, func(ctx context.Context, n *coordinator.Node) error { return n.Release(ctx, txid) })
}

// onLeader runs f on the leader, retrying on another node when a node is not the
// leader, is shutting down, or does not answer in time. A conflict after an attempt
// whose outcome was unknown means that attempt took effect.
func (p clusterProposer) onLeader(ctx context.Context, f func(context.Context, *coordinator.Node) error) error {
	uncertain := false
	return p.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := f(actx, n)
		switch {
		case err == nil:
		case errors.Is(err, coordinator.ErrConflict) && uncertain:
			return nil
		case errors.Is(err, coordinator.ErrOutcomeUnknown):
			uncertain = true
		case errors.Is(err, coordinator.ErrClosed) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			uncertain = true
			return fmt.Errorf("%w: %w", coordinator.ErrOutcomeUnknown, err)
		}
		return err
	})
}
