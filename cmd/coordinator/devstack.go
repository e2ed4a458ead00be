package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
)

// devStack is the deployment `coordinator dev` and `coordinator bench` run in one
// process: coordinator nodes with real Raft, shards (a World behind a Participant with
// a bbolt journal) and the policy engine, connected either by an embedded NATS server
// with JetStream (the default: every message crosses the real wire protocol) or by the
// in-memory participant network (--transport inmem, the proposer calling the cluster
// directly).
type devStack struct {
	dir, tempDir string // tempDir is removed at close
	clk          clock.Clock
	net          *twophase.InmemNetwork // --transport inmem
	nats         *devNATS               // --transport nats
	sec          *devSecurity           // --secure (NATS only)
	cliConn      *nats.Conn             // the load driver's connection and client (nats)
	cli          *client.Client
	lc           *coordinator.LocalCluster
	shards       []*devShard
	stopWatch    context.CancelFunc
	pol          *policy.Engine // nil with --no-policy
	admin        *devAdmin      // the nodes' admin APIs and console; nil without --admin-addr
}

// devShard is one shard: its game state, journal and participant, and over NATS its
// connection, client and command server.
type devShard struct {
	id      string
	region  string
	world   *shardsvc.World       // nil in bench, whose shards accept every player
	game    twophase.ShardHandler // world, or a shard that accepts every player
	journal twophase.Journal
	part    *twophase.Participant
	nc      *nats.Conn   // over NATS: the shard's own connection
	sdk     *shard.Shard // over NATS: the shard as a game would run it (shard.Start)
}

// Transports `coordinator dev` and `coordinator bench` can run over.
const (
	transportNATS  = "nats"
	transportInmem = "inmem"
)

// devHeartbeat is the Raft heartbeat and election timeout of the dev and bench
// clusters: serve's default (coordinator.DefaultHeartbeatTimeout), so that bench
// measures the failover a deployment gets. It is short enough that a killed leader is
// replaced within a second, long enough that a busy 2-core machine running NATS,
// three nodes and the load in one process does not depose healthy leaders.
const devHeartbeat = coordinator.DefaultHeartbeatTimeout

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
	participants := func(id string) coordinator.TransportFactory {
		return func(h twophase.ReplyHandler) (twophase.Transport, error) { return s.net.Coordinator(id, h), nil }
	}
	if o.transport == transportNATS {
		if o.secure {
			if s.sec, err = newDevSecurity(s.dir); err != nil {
				return s, fmt.Errorf("--secure: %w", err)
			}
		}
		if s.nats, err = startDevNATS(filepath.Join(s.dir, "nats"), o.nodes, s.sec, log); err != nil {
			return s, fmt.Errorf("nats: %w", err)
		}
		if s.cliConn, s.cli, err = s.nats.newClient("shardmatch-dev-driver", natsauth.RoleProposer, "dev-driver"); err != nil {
			return s, err
		}
	} else {
		s.net = twophase.NewInmemNetwork(twophase.InmemConfig{Seed: o.seed, Clock: s.clk})
	}
	for i := 0; i < o.shards; i++ {
		if err = s.addShard(ctx, fmt.Sprintf("s%d", i+1), devRegions[i%len(devRegions)], o, log); err != nil {
			return s, err
		}
	}
	pol, err := s.policy(o, log)
	if err != nil {
		return s, err
	}
	if o.adminAddr != "" {
		if s.admin, err = startDevAdmin(o.adminAddr, o.nodes, log); err != nil {
			// The console is a convenience: a busy port must not stop the run.
			log.Warn("no admin API or console (try --admin-addr 127.0.0.1:0)", "err", err)
			s.admin, err = nil, nil
		}
		if s.admin != nil && s.pol != nil {
			if err = s.admin.addPolicy(s.pol); err != nil {
				return s, err
			}
		}
	}
	lcc := coordinator.LocalClusterConfig{
		Nodes: o.nodes, DataDir: s.dir, AttemptTimeout: 2 * time.Second, Participants: participants,
		Configure: func(id string, c *coordinator.Config) {
			c.Clock, c.Logger, c.Policy = s.clk, log, pol
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = devHeartbeat, devHeartbeat, devHeartbeat/2
			if s.admin != nil {
				s.admin.configure(id, c)
			}
		},
	}
	if s.nats != nil { // each node assembled by natsnode, its transport and API server with it
		lcc.Participants, lcc.NewNode = nil, s.nats.newNode
	}
	lc, err := coordinator.NewLocalCluster(lcc)
	if err != nil {
		return s, err
	}
	s.lc = lc
	if s.admin != nil {
		for i := range lc.Size() {
			if err = s.admin.attach(lc, i); err != nil {
				return s, err
			}
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.nats != nil {
		return s, s.registerOverNATS(rctx, o)
	}
	for _, sh := range s.shards {
		if err = s.lc.OnLeader(rctx, func(n *coordinator.Node) error { return n.RegisterShard(rctx, s.shardInfo(sh, o)) }); err != nil {
			return s, fmt.Errorf("register shard %s: %w", sh.id, err)
		}
		// Transactions left in doubt by an earlier run on the same --data.
		if err := sh.part.Recover(rctx, s.lc); err != nil {
			log.Warn("shard recovery incomplete; redelivery will finish it", "shard", sh.id, "err", err)
		}
	}
	return s, nil
}

// registerOverNATS starts every shard with shard.Start (it registers itself, serves
// its commands and settles what an earlier run on the same --data left in doubt),
// then waits until a leader takes proposals.
func (s *devStack) registerOverNATS(ctx context.Context, o devOptions) error {
	for _, sh := range s.shards {
		if err := s.nats.startShard(ctx, sh, s.dir, o, s.clk); err != nil {
			return fmt.Errorf("shard %s: %w", sh.id, err)
		}
	}
	for !s.nats.serving(s.lc) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader serving: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (s *devStack) shardInfo(sh *devShard, o devOptions) *smv1.ShardInfo {
	return &smv1.ShardInfo{ShardId: sh.id, Region: sh.region, Capacity: int32(o.players), ProtocolVersion: 1}
}

// policy returns the policy engine, nil with --no-policy.
func (s *devStack) policy(o devOptions, log *slog.Logger) (coordinator.Policy, error) {
	if o.noPolicy {
		return nil, nil
	}
	eng, err := policy.New(policy.Config{BundleDir: o.policyBundle, EvalTimeout: o.policyTimeout, Logger: log, Clock: s.clk})
	if err != nil {
		return nil, err
	}
	s.pol = eng
	if o.policyBundle != "" { // hot reload on file change and SIGHUP
		var wctx context.Context
		wctx, s.stopWatch = context.WithCancel(context.Background())
		go func() { _ = eng.Watch(wctx) }()
	}
	return eng, nil
}

func (s *devStack) addShard(ctx context.Context, id, region string, o devOptions, log *slog.Logger) error {
	sh := &devShard{id: id, region: region}
	var h twophase.ShardHandler = acceptAll{}
	if !o.acceptAll {
		wc := shardsvc.DefaultWorldConfig()
		wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = id, region, o.players, o.matchTTL, s.clk, o.seed
		w, err := shardsvc.NewWorld(wc)
		if err != nil {
			return err
		}
		sh.world, h = w, w
	}
	sh.game = h
	if s.nats != nil {
		// Over NATS a shard runs the way a game's does, with shard.Start, once the
		// cluster can take its registration (registerOverNATS).
		s.shards = append(s.shards, sh)
		return nil
	}
	j, err := twophase.OpenJournal(filepath.Join(s.dir, id+".journal"))
	if err != nil {
		return err
	}
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: h, Journal: j, Clock: s.clk, Logger: log})
	if err != nil {
		_ = j.Close()
		return err
	}
	sh.journal, sh.part = j, p
	s.shards = append(s.shards, sh) // closed by close from here on
	s.net.AddShard(id, p)
	return nil
}

// proposer is how the load driver reaches the coordinator: the client SDK over NATS,
// or the cluster itself in memory.
func (s *devStack) proposer() shardsvc.Proposer {
	if s.cli != nil {
		return s.cli
	}
	return clusterProposer{s.lc}
}

// kill stops node i abruptly, with its NATS parts.
func (s *devStack) kill(i int) {
	if s.admin != nil {
		s.admin.detach(i)
	}
	_ = s.lc.Kill(i)
	if s.nats != nil {
		s.nats.stopSlot(i)
	}
}

// restart starts node i again on its data, with fresh NATS parts.
func (s *devStack) restart(i int) error {
	if s.lc.Node(i) != nil {
		return nil
	}
	if err := s.lc.Start(i); err != nil {
		return err
	}
	if s.admin != nil {
		return s.admin.attach(s.lc, i)
	}
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
			s.kill(i)
			kills++
			select {
			case <-ctx.Done():
			case <-time.After(min(every/2, 2*time.Second)):
			}
			if err := s.restart(i); err != nil {
				log.Error("chaos: restarting node", "node", s.lc.NodeID(i), "err", err)
			}
		}
	}()
	return out
}

// close stops everything in dependency order: the nodes, then what they talk
// through, the shards' servers, the clients and connections, NATS, the journals.
func (s *devStack) close() {
	s.stopWatch()
	if s.admin != nil {
		s.admin.close()
	}
	if s.lc != nil {
		s.lc.Shutdown()
	}
	if s.net != nil {
		_ = s.net.Close()
	}
	for _, sh := range s.shards {
		if sh.sdk != nil {
			sh.sdk.Stop(context.Background()) // closes its journal too
			sh.journal = nil
		}
		if sh.nc != nil {
			sh.nc.Close()
		}
	}
	if s.cli != nil {
		_ = s.cli.Close()
	}
	if s.cliConn != nil {
		s.cliConn.Close()
	}
	if s.nats != nil {
		s.nats.close()
	}
	for _, sh := range s.shards {
		if sh.journal != nil {
			_ = sh.journal.Close()
		}
	}
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// acceptAll is the shard handler of `coordinator bench`: every player is free, so
// every proposal commits and the benchmark measures the protocol alone.
type acceptAll struct{}

var _ twophase.ShardHandler = acceptAll{}

func (acceptAll) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (acceptAll) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (acceptAll) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

// clusterProposer is the load driver's view of the LocalCluster: every call goes to
// whichever node leads, retried elsewhere on "not leader". Its errors match the client
// SDK's (client.ErrOutcomeUnknown and the rest), so the load generator and the bench
// see one set of errors whichever transport runs.
type clusterProposer struct{ lc *coordinator.LocalCluster }

var _ shardsvc.Proposer = clusterProposer{}

func (p clusterProposer) Propose(ctx context.Context, prop *smv1.Proposal) (*smv1.Decision, error) {
	d, err := p.lc.Propose(ctx, prop)
	return d, asClientError(err)
}

func (p clusterProposer) Renew(ctx context.Context, txid string) error {
	return asClientError(p.onLeader(ctx, func(ctx context.Context, n *coordinator.Node) error { return n.Renew(ctx, txid) }))
}

func (p clusterProposer) Release(ctx context.Context, txid string) error {
	return asClientError(p.onLeader(ctx, func(ctx context.Context, n *coordinator.Node) error { return n.Release(ctx, txid) }))
}

// asClientError adds to a node's error the client SDK's sentinel of the same meaning
// (the node's stays matchable too).
func asClientError(err error) error {
	for _, m := range []struct{ node, client error }{
		{coordinator.ErrOutcomeUnknown, client.ErrOutcomeUnknown},
		{coordinator.ErrNotFound, client.ErrNotFound},
		{coordinator.ErrConflict, client.ErrConflict},
		{coordinator.ErrInvalid, client.ErrInvalid},
	} {
		if errors.Is(err, m.node) {
			return fmt.Errorf("%w: %w", m.client, err)
		}
	}
	return err
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
