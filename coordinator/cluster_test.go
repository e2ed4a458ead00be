package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// testCluster is an in-process deployment under test: a coordinator.LocalCluster
// (real Raft, bbolt log stores in temp dirs), real participants with bbolt journals behind the
// in-memory participant network, and a history recorder fed by every node's FSM, every
// shard's effects and every client call.
type testCluster struct {
	t      testing.TB
	opts   clusterOpts
	ref    clock.Clock // the reference clock of the history
	lc     *coordinator.LocalCluster
	net    *twophase.InmemNetwork
	rec    *history.Recorder
	clocks map[string]*clock.Skewed
	shards map[string]*testShard
}

type clusterOpts struct {
	nodes, shards   int
	seed            int64
	memJournal      bool    // MemJournal instead of bbolt (benchmarks)
	unsafe          bool    // Sabotage.DeliverBeforeLog on every node: the checker must catch it
	wallClockExpiry bool    // Sabotage.WallClockExpiry on every node
	rejectRate      float64 // share of prepares a shard refuses on its own
	// fake, if set, is the one clock of the whole run: nodes, shards and history.
	fake  *clock.Fake
	tweak func(id string, c *coordinator.Config)
}

type testShard struct {
	id      string
	path    string
	sim     *simShard
	part    *twophase.Participant
	journal twophase.Journal
	up      bool
}

const rho = 0.01

func newTestCluster(t testing.TB, o clusterOpts) *testCluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 3
	}
	if o.shards == 0 {
		o.shards = 3
	}
	var ref clock.Clock = clock.NewReal()
	if o.fake != nil {
		ref = o.fake
	}
	c := &testCluster{t: t, opts: o, ref: ref, clocks: map[string]*clock.Skewed{}, shards: map[string]*testShard{}}
	c.rec = history.NewRecorder(ref.Mono, rho)
	c.net = twophase.NewInmemNetwork(twophase.InmemConfig{Seed: o.seed, Clock: ref})
	dir := t.TempDir()
	for i := 1; i <= o.shards; i++ {
		id := fmt.Sprintf("s%d", i)
		c.shards[id] = &testShard{id: id, path: filepath.Join(dir, id+".journal"),
			sim: newSimShard(id, c.rec, o.seed+int64(i), o.rejectRate)}
		c.startShard(id)
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		Nodes: o.nodes, DataDir: dir, AttemptTimeout: 2 * time.Second,
		Participants: func(id string) coordinator.TransportFactory {
			return func(h twophase.ReplyHandler) (twophase.Transport, error) { return c.net.Coordinator(id, h), nil }
		},
		Options: func(string) []coordinator.Option {
			return []coordinator.Option{coordinator.WithSabotage(coordinator.Sabotage{DeliverBeforeLog: o.unsafe, WallClockExpiry: o.wallClockExpiry})}
		},
		Configure: func(id string, cfg *coordinator.Config) {
			if c.clocks[id] == nil {
				c.clocks[id] = clock.NewSkewed(ref)
			}
			cfg.Clock = c.clocks[id]
			cfg.Observer = collect.Observer(id, collect.Recorder{Rec: c.rec})
			cfg.Rho = rho
			cfg.ResendInitial, cfg.ResendMax = 20*time.Millisecond, 200*time.Millisecond
			cfg.ExpiryScan = 20 * time.Millisecond
			cfg.Limits.DefaultPrepareTimeout = 2 * time.Second
			if o.tweak != nil {
				o.tweak(id, cfg)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.lc = lc
	t.Cleanup(c.close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range c.shardIDs() {
		err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
			return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: s, Region: "eu"})
		})
		if err != nil {
			t.Fatalf("register %s: %v", s, err)
		}
	}
	return c
}

func (c *testCluster) shardIDs() []string {
	var out []string
	for id := range c.shards {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (c *testCluster) startShard(id string) {
	c.t.Helper()
	s := c.shards[id]
	if c.opts.memJournal {
		if s.journal == nil {
			s.journal = twophase.NewMemJournal()
		}
	} else {
		bj, err := twophase.OpenBoltJournal(s.path)
		if err != nil {
			c.t.Fatalf("open journal %s: %v", id, err)
		}
		s.journal = bj
	}
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: s.sim, Journal: s.journal, Clock: c.ref})
	if err != nil {
		c.t.Fatal(err)
	}
	s.part, s.up = p, true
	c.net.AddShard(id, p)
}

// killShard takes a shard off the network and closes its journal, as a crash would.
func (c *testCluster) killShard(id string) {
	s := c.shards[id]
	c.net.RemoveShard(id)
	if !c.opts.memJournal {
		_ = s.journal.Close()
	}
	s.up = false
}

// restartShard reopens the journal, asks the leader about in-doubt txns, and rejoins.
func (c *testCluster) restartShard(ctx context.Context, id string) {
	c.startShard(id)
	if err := c.shards[id].part.Recover(ctx, c.lc); err != nil {
		c.t.Logf("recover %s: %v (redelivery will finish it)", id, err)
	}
}

func (c *testCluster) close() {
	c.lc.Shutdown()
	_ = c.net.Close()
	for _, s := range c.shards {
		if s.up && !c.opts.memJournal {
			_ = s.journal.Close()
		}
	}
}

func (c *testCluster) leader(ctx context.Context) int {
	c.t.Helper()
	i, _, err := c.lc.Leader(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return i
}

// isolate cuts coordinator i from the other coordinators and from every shard.
func (c *testCluster) isolate(i int) {
	c.lc.Partition(i)
	c.net.Isolate(c.lc.NodeID(i))
}

func (c *testCluster) heal() {
	c.lc.Heal()
	c.net.HealAll()
	_ = c.net.SetFaults(twophase.InmemFaults{})
	c.net.SetHook(nil)
}

// propose runs one recorded client call.
func (c *testCluster) propose(ctx context.Context, process string, p *smv1.Proposal) (*smv1.Decision, error) {
	op := history.Op{Process: process, Kind: history.OpPropose, ProposalID: p.GetProposalId(),
		TTL: time.Duration(p.GetMatchTtlMs()) * time.Millisecond}
	for _, t := range p.GetTeams() {
		for _, pl := range t.GetPlayers() {
			op.Players = append(op.Players, history.PlayerRef{Player: pl.GetPlayerId(), Shard: pl.GetShardId()})
		}
	}
	call := c.rec.Invoke(op)
	d, err := c.lc.Propose(ctx, p)
	switch {
	case err != nil && errors.Is(err, coordinator.ErrInvalid):
		call.Return(history.Reply{Result: history.ResultFail})
	case err != nil:
		call.Return(history.Reply{Result: history.ResultUnknown})
	case d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED:
		tokens := map[string]uint64{}
		for _, pd := range d.GetPlayers() {
			tokens[pd.GetPlayerId()] = pd.GetFencingToken()
		}
		call.Return(history.Reply{Result: history.ResultCommitted, TxID: d.GetTxid(), Tokens: tokens})
	default:
		call.Return(history.Reply{Result: history.ResultAborted, TxID: d.GetTxid(), Reason: d.GetReason().String()})
	}
	return d, err
}

// hostCall records a match host's Renew or Release.
func (c *testCluster) hostCall(ctx context.Context, process string, kind history.OpKind, txid string) error {
	call := c.rec.Invoke(history.Op{Process: process, Kind: kind, TxID: txid})
	err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if kind == history.OpRenew {
			return n.Renew(actx, txid)
		}
		return n.Release(actx, txid)
	})
	switch {
	case err == nil:
		call.Return(history.Reply{Result: history.ResultOK})
	case errors.Is(err, coordinator.ErrConflict) || errors.Is(err, coordinator.ErrNotFound):
		call.Return(history.Reply{Result: history.ResultFail})
	default:
		call.Return(history.Reply{Result: history.ResultUnknown})
	}
	return err
}

// settle waits until every running node has applied the same log with nothing
// unfinished and no running shard holds a txn in doubt. It reports whether that
// happened before ctx ended.
func (c *testCluster) settle(ctx context.Context) bool {
	for {
		if c.settled() {
			return true
		}
		select {
		case <-ctx.Done():
			for i := 0; i < c.lc.Size(); i++ {
				if n := c.lc.Node(i); n != nil {
					c.t.Logf("%s: applied=%d unfinished=%d leader=%v", n.ID(), n.FSM().AppliedIndex(),
						len(n.FSM().Unfinished()), n.IsLeader())
				}
			}
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *testCluster) settled() bool {
	var idx uint64
	for i := 0; i < c.lc.Size(); i++ {
		n := c.lc.Node(i)
		if n == nil {
			continue
		}
		if len(n.FSM().Unfinished()) > 0 {
			return false
		}
		if a := n.FSM().AppliedIndex(); idx != 0 && a != idx {
			return false
		} else {
			idx = a
		}
	}
	for _, s := range c.shards {
		if s.up && len(s.part.InDoubt()) > 0 {
			return false
		}
	}
	return true
}

// check heals, settles, records the final state and runs every invariant checker.
func (c *testCluster) check(settleFor time.Duration) history.Report {
	c.t.Helper()
	c.heal()
	ctx, cancel := context.WithTimeout(context.Background(), settleFor)
	defer cancel()
	settled := c.settle(ctx)
	c.rec.SetFinal(c.final(), settled)
	return history.Check(c.rec.History())
}

func (c *testCluster) final() history.Final {
	f := history.Final{Nodes: map[string]history.NodeFinal{}, Shards: map[string]history.ShardFinal{}}
	for i := 0; i < c.lc.Size(); i++ {
		n := c.lc.Node(i)
		if n == nil {
			continue
		}
		f.Nodes[n.ID()] = collect.NodeFinal(n.FSM().State())
	}
	for id, s := range c.shards {
		if !s.up {
			continue
		}
		entries, err := s.journal.List()
		if err != nil {
			c.t.Fatalf("journal %s: %v", id, err)
		}
		f.Shards[id] = collect.ShardFinal(entries)
	}
	return f
}
