package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// logCacheEntries is how many of the newest Raft entries a node keeps in memory.
const logCacheEntries = 512

// Node is one coordinator replica: Raft, the FSM, and, while it leads, the two-phase
// commit driver and lease expiry.
type Node struct {
	cfg       Config
	log       *slog.Logger
	fsm       *FSM
	stores    *raftStores
	raft      *raft.Raft
	batch     *batcher
	transport twophase.Transport
	track     *tracker // what the leader's expiry and retention act on
	sabotage  Sabotage // zero unless a checker test asked (WithSabotage)

	// lisMu orders Listen against leadership announcements, so a new listener hears
	// the current leadership exactly once; listeners is copied on write, so that
	// decisions (announced under the FSM's lock) never wait for lisMu.
	lisMu       sync.Mutex
	listeners   atomic.Pointer[[]Listener]
	leadingTerm uint64 // the term this node has taken over, 0 while not leading (lisMu)

	mu     sync.Mutex
	leader *leaderState // non-nil while leading and recovered

	waitMu  sync.Mutex
	waiters map[string][]chan *smv1.Decision

	notify    chan bool
	leadCtl   chan leadCtl // pause/resume of the leader's duties (snapshot restore)
	restoreMu sync.Mutex   // one snapshot restore at a time
	stop      chan struct{}
	loopDone  chan struct{}
	closed    sync.Once
	policy    *policyRunner // nil without a Config.Policy
}

// New opens the node's storage, starts Raft and the leadership watcher.
func New(cfg Config, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), waiters: make(map[string][]chan *smv1.Decision),
		notify: make(chan bool, 16), leadCtl: make(chan leadCtl), stop: make(chan struct{}), loopDone: make(chan struct{})}
	for _, o := range opts {
		o(n)
	}
	n.track = newTracker(cfg.Rho, n.expiryNow)
	n.fsm = NewFSM(teeObserver{t: n.track, next: cfg.Observer}, n.resolve)
	if cfg.SnapshotFormat != 0 {
		if err := n.fsm.SetSnapshotFormat(cfg.SnapshotFormat); err != nil {
			return nil, err
		}
	}
	stores, err := openStores(cfg.DataDir, cfg.RaftLogOutput)
	if err != nil {
		return nil, err
	}
	n.stores = stores
	rc := n.raftConfig(n.notify)
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(stores.log, stores.log, stores.snaps)
		if err != nil {
			_ = stores.close()
			return nil, fmt.Errorf("coordinator: inspect raft state: %w", err)
		}
		if !has {
			if err := raft.BootstrapCluster(rc, stores.log, stores.log, stores.snaps, cfg.RaftTransport,
				raft.Configuration{Servers: cfg.Peers}); err != nil {
				_ = stores.close()
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
		}
	}
	// The newest entries stay in memory too: replication to followers and the FSM
	// read them right after they are stored.
	logs, err := raft.NewLogCache(logCacheEntries, stores.log)
	if err != nil {
		_ = stores.close()
		return nil, fmt.Errorf("coordinator: raft log cache: %w", err)
	}
	// The transport exists before Raft starts, so the node never leads without one;
	// replies reaching handleReply before the node leads are dropped (the driver
	// resends).
	if n.transport, err = cfg.Participants(n.handleReply); err != nil {
		_ = stores.close()
		return nil, fmt.Errorf("coordinator: transport to shards: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stores.log, stores.snaps, cfg.RaftTransport)
	if err != nil {
		if c, ok := n.transport.(io.Closer); ok {
			_ = c.Close()
		}
		_ = stores.close()
		return nil, fmt.Errorf("coordinator: start raft: %w", err)
	}
	n.raft = r
	n.batch = newBatcher(r, cfg.MaxBatch, cfg.ApplyTimeout)
	if cfg.Policy != nil {
		n.policy = newPolicyRunner(cfg.Policy, n.stop)
	}
	go n.watchLeadership()
	return n, nil
}

// ID is the node's Raft server id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Raft exposes the Raft instance for operators' actions and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// FSM exposes the replicated state (read accessors only).
func (n *Node) FSM() *FSM { return n.fsm }

// IsLeader reports whether this node leads and has finished taking over.
func (n *Node) IsLeader() bool { return n.leaderState() != nil }

// Shutdown stops the node: leadership duties, Raft, storage. It does not transfer
// leadership; callers wanting a graceful hand-over call TransferLeadership first.
func (n *Node) Shutdown() error {
	var err error
	n.closed.Do(func() {
		close(n.stop)
		<-n.loopDone
		if n.policy != nil {
			n.policy.wait()
		}
		err = n.raft.Shutdown().Error()
		n.batch.close()
		if cerr := n.stores.close(); err == nil {
			err = cerr
		}
	})
	return err
}

// TransferLeadership hands leadership to another voter, if this node leads.
func (n *Node) TransferLeadership() error {
	if n.raft.State() != raft.Leader {
		return nil
	}
	return n.raft.LeadershipTransfer().Error()
}

func (n *Node) leaderState() *leaderState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// Propose runs a proposal to its decision. It returns the Decision (COMMITTED, or
// ABORTED with a reason) once it is in the log; an *InvalidError for a malformed
// proposal (nothing changes); a *NotLeaderError; or an *UnknownOutcomeError when ctx
// ends or leadership is lost first — then ask Status with the proposal id.
func (n *Node) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	if err := ValidateProposal(p, n.cfg.Limits); err != nil {
		return nil, err
	}
	ls := n.leaderState()
	if ls == nil {
		return nil, n.notLeader()
	}
	if rec, ok := n.fsm.TxnByProposal(p.GetProposalId()); ok {
		return n.awaitDecision(ctx, rec)
	}
	var shards []*smv1.ShardInfo
	seen := map[string]bool{}
	for _, s := range proposalShards(p) {
		info, ok := n.fsm.Shard(s)
		if !ok {
			return nil, &InvalidError{Field: "shard_id", Reason: fmt.Sprintf("unknown shard %q", s)}
		}
		if info.GetState() != smv1.ShardState_SHARD_STATE_ACTIVE {
			return nil, &InvalidError{Field: "shard_id", Reason: fmt.Sprintf("shard %q is %s", s, info.GetState())}
		}
		if !seen[s] {
			seen[s] = true
			shards = append(shards, info)
		}
	}
	verdict := &smv1.PolicyVerdict{Allow: true}
	if n.cfg.Policy != nil {
		pctx, span := startSpan(ctx, spans.PolicyEval)
		v, err := n.policy.evaluate(pctx, p, shards)
		endPolicySpan(span, v, err)
		if v == nil {
			return nil, fmt.Errorf("coordinator: policy: %w", err)
		}
		if err != nil {
			n.log.WarnContext(ctx, "policy evaluation failed; denying", "proposal_id", p.GetProposalId(), "err", err)
		}
		verdict = v
	}
	tp, _ := spans.TraceParent(trace.SpanContextFromContext(ctx))
	bctx, span := startSpan(ctx, spans.RaftBegin)
	res, err := n.batch.apply(bctx, &smv1.Command{Op: &smv1.Command_Begin{Begin: &smv1.Begin{
		Proposal: p, Verdict: verdict, WallUnixMs: n.cfg.Clock.Now().UnixMilli(), Traceparent: tp}}})
	endBeginSpan(span, res, err)
	if err != nil {
		var u *UnknownOutcomeError
		if errors.As(err, &u) { // the batcher shares one error among a batch: copy it
			return nil, &UnknownOutcomeError{ProposalID: p.GetProposalId(), Cause: u.Cause}
		}
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if res.Created && res.Txn.GetState() == smv1.TxnState_TXN_STATE_PREPARING {
		plan := n.plan(res.Txn, false)
		plan.Trace = trace.SpanContextFromContext(ctx)
		ls.driver.Start(plan)
	}
	return n.awaitDecision(ctx, res.Txn)
}

// awaitDecision waits until rec is decided in the FSM.
func (n *Node) awaitDecision(ctx context.Context, rec *smv1.TxnRecord) (*smv1.Decision, error) {
	if twophase.Decided(rec.GetState()) {
		return rec.GetDecision(), nil
	}
	ch := make(chan *smv1.Decision, 1)
	n.waitMu.Lock()
	n.waiters[rec.Txid] = append(n.waiters[rec.Txid], ch)
	n.waitMu.Unlock()
	defer n.dropWaiter(rec.Txid, ch)
	// The decision may have been applied before the waiter was registered.
	if cur, ok := n.fsm.Txn(rec.Txid); ok && twophase.Decided(cur.GetState()) {
		return cur.GetDecision(), nil
	}
	select {
	case d := <-ch:
		return d, nil
	case <-ctx.Done():
		return nil, &UnknownOutcomeError{TxID: rec.Txid, ProposalID: rec.GetProposal().GetProposalId(), Cause: ctx.Err()}
	case <-n.stop:
		return nil, &UnknownOutcomeError{TxID: rec.Txid, ProposalID: rec.GetProposal().GetProposalId(), Cause: ErrClosed}
	}
}

func (n *Node) dropWaiter(txid string, ch chan *smv1.Decision) {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	ws := n.waiters[txid]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.waiters, txid)
	} else {
		n.waiters[txid] = ws
	}
}

// resolve is the FSM's decision hook (FSM lock held).
func (n *Node) resolve(d *smv1.Decision) {
	n.announceDecided(d)
	n.waitMu.Lock()
	ws := n.waiters[d.GetTxid()]
	delete(n.waiters, d.GetTxid())
	n.waitMu.Unlock()
	for _, ch := range ws {
		ch <- d
	}
}

// Status returns the transaction named by id (a txid or a proposal id) with a
// linearizable read: only the leader answers, after confirming it still leads and its
// FSM has applied everything committed when the call arrived.
func (n *Node) Status(ctx context.Context, id string) (*smv1.TxnRecord, error) {
	if err := n.linearize(ctx); err != nil {
		return nil, err
	}
	if rec, ok := n.fsm.Txn(id); ok {
		return rec, nil
	}
	if rec, ok := n.fsm.TxnByProposal(id); ok {
		return rec, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

func (n *Node) linearize(ctx context.Context) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	ci := n.raft.CommitIndex()
	switch err := n.await(ctx, n.raft.VerifyLeader()); {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return n.notLeader()
	}
	return n.fsm.waitApplied(ctx, ci)
}

// await waits for a Raft future, but not past ctx or the node's Shutdown.
// hashicorp/raft does not answer a verify future still queued when Raft shuts down,
// and such a future's Error has no shutdown channel, so waiting on it alone can block
// forever (a status request then held up a server's Close). When ctx or Shutdown wins,
// the goroutine left waiting holds only the future; it ends if Raft answers, and
// otherwise stays parked for the life of the process, which is ending the node anyway.
func (n *Node) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrClosed
	}
}

// Renew restarts the TTL of every lease of the committed match txid.
func (n *Node) Renew(ctx context.Context, txid string) error {
	return n.leaderApply(ctx, &smv1.Command{Op: &smv1.Command_Renew{Renew: &smv1.Renew{Txid: txid}}})
}

// Release ends the committed match txid and frees its players.
func (n *Node) Release(ctx context.Context, txid string) error {
	return n.leaderApply(ctx, &smv1.Command{Op: &smv1.Command_Release{Release: &smv1.Release{Txid: txid}}})
}

// RegisterShard adds or updates a shard in the registry; a registration
// ValidateShardInfo refuses (an unknown protocol version, ...) is an *InvalidError.
func (n *Node) RegisterShard(ctx context.Context, s *smv1.ShardInfo) error {
	if err := ValidateShardInfo(s); err != nil {
		return err
	}
	return n.leaderApply(ctx, &smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{Shard: s}}})
}

// SetShardState drains, disables or re-activates a shard.
func (n *Node) SetShardState(ctx context.Context, id string, st smv1.ShardState) error {
	return n.leaderApply(ctx, &smv1.Command{Op: &smv1.Command_SetShardState{SetShardState: &smv1.SetShardState{ShardId: id, State: st}}})
}

func (n *Node) leaderApply(ctx context.Context, c *smv1.Command) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	res, err := n.batch.apply(ctx, c)
	if err != nil {
		return err
	}
	return res.Err
}

// handleReply routes shard votes and acks to the driver while this node leads.
func (n *Node) handleReply(r *smv1.ShardReply) {
	if ls := n.leaderState(); ls != nil {
		ls.driver.HandleReply(r)
	}
}

// ForceAbort is an operator's abort of a PREPARING transaction: it logs ABORTED /
// OPERATOR_ABORT and has the driver deliver it at once. The first decision in the log
// always stands, so if the transaction was already decided (or the driver decided
// first) it returns ErrConflict and changes nothing.
func (n *Node) ForceAbort(ctx context.Context, txid string) error {
	ls := n.leaderState()
	if ls == nil {
		return n.notLeader()
	}
	rec, ok := n.fsm.Txn(txid)
	if !ok {
		return fmt.Errorf("%w: txn %q", ErrNotFound, txid)
	}
	if rec.GetState() != smv1.TxnState_TXN_STATE_PREPARING {
		return fmt.Errorf("%w: txn %s is %s, not PREPARING", ErrConflict, txid, rec.GetState())
	}
	res, err := n.batch.apply(ctx, &smv1.Command{Op: &smv1.Command_Decide{Decide: &smv1.Decide{
		Txid: txid, Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_OPERATOR_ABORT,
		Message: "aborted by operator", WallUnixMs: n.cfg.Clock.Now().UnixMilli()}}})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	ls.driver.Preempt(txid)
	if d := res.Txn.GetDecision(); d.GetReason() != smv1.Reason_REASON_OPERATOR_ABORT {
		return fmt.Errorf("%w: txn %s was already decided %s", ErrConflict, txid, d.GetOutcome())
	}
	return nil
}

// DriverStats returns the two-phase driver's counters for the current term; ok is
// false when this node is not leading.
func (n *Node) DriverStats() (twophase.DriverStats, bool) {
	ls := n.leaderState()
	if ls == nil {
		return twophase.DriverStats{}, false
	}
	return ls.driver.Stats(), true
}
