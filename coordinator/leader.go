package coordinator

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// leaderState is what a node holds while it leads one term.
type leaderState struct {
	term   uint64
	driver *twophase.Driver
}

// watchLeadership starts and stops the leader's duties as Raft reports changes.
func (n *Node) watchLeadership() {
	defer close(n.loopDone)
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *term
	stopLeading := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	startLeading := func() {
		ctx, cancel := context.WithCancel(context.Background())
		cur = &term{cancel: cancel, done: make(chan struct{})}
		go func(done chan struct{}) {
			defer close(done)
			n.lead(ctx)
		}(cur.done)
	}
	defer stopLeading()
	paused := false // a snapshot restore holds the leader's duties
	for {
		select {
		case <-n.stop:
			return
		case isLeader := <-n.notify:
			stopLeading()
			if isLeader && !paused {
				startLeading()
			}
		case req := <-n.leadCtl:
			// Pause stops this term's duties; resume starts them afresh on whatever the
			// state now is (lead's barrier and recovery), if Raft still says we lead.
			stopLeading()
			paused = req.pause
			if !paused && n.raft.State() == raft.Leader {
				startLeading()
			}
			close(req.done)
		}
	}
}

// lead runs one leadership term: barrier, recovery, then the periodic duties.
func (n *Node) lead(ctx context.Context) {
	term := n.raft.CurrentTerm()
	log := n.log.With("term", term)
	// Barrier: every entry of earlier terms is applied before we look at the state.
	for {
		err := n.raft.Barrier(n.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil || n.raft.State() != raft.Leader {
			return
		}
		log.Warn("barrier failed; retrying", "err", err)
	}
	// hashicorp/raft hands a BatchingFSM only command and configuration entries, so the
	// term's no-op and our barrier never move the FSM's applied index, and a
	// linearizable read waiting for the commit index would hang on a quiet new leader.
	// One empty command moves it past both.
	if _, err := n.batch.apply(ctx, &smv1.Command{Op: &smv1.Command_Forget{Forget: &smv1.Forget{}}}); err != nil {
		log.Warn("could not log the takeover marker; giving up this term", "err", err)
		return
	}
	drv, err := twophase.NewDriver(twophase.DriverConfig{
		Transport: n.transport, Log: driverLog{n}, Clock: n.cfg.Clock, Logger: log, Term: term,
		ResendInitial: n.cfg.ResendInitial, ResendMax: n.cfg.ResendMax,
		UnsafeDeliverBeforeLog: n.sabotage.DeliverBeforeLog,
	})
	if err != nil {
		log.Error("cannot start driver", "err", err)
		return
	}
	ls := &leaderState{term: term, driver: drv}
	n.mu.Lock()
	n.leader = ls
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.leader = nil
		n.mu.Unlock()
		drv.Stop()
		n.announceLeading(false, term)
	}()

	// Presumed abort: nothing PREPARING can have been told COMMIT, so abort it; and
	// deliver every decision not yet acknowledged everywhere.
	unfinished := n.fsm.Unfinished()
	for _, t := range unfinished {
		drv.Start(n.plan(t, true))
	}
	log.Info("leading", "recovered_txns", len(unfinished))
	n.announceLeading(true, term)

	// Expiry and retention act on the tracker's index, rebuilt now (every live match
	// gets its full TTL from this takeover) and kept current by the FSM's events.
	n.track.start(n.fsm)
	defer n.track.stop()
	tick := n.cfg.Clock.NewTicker(n.cfg.ExpiryScan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			if due := n.track.dueExpiries(n.expiryNow()); len(due) > 0 {
				n.applyBackground(ctx, due)
			}
			now := n.cfg.Clock.Mono()
			for {
				old := n.track.dueForgets(now, n.cfg.Retention, n.cfg.MaxRetained)
				if len(old) == 0 {
					break
				}
				if !n.applyBackground(ctx, []*smv1.Command{{Op: &smv1.Command_Forget{Forget: &smv1.Forget{Txids: old}}}}) {
					n.track.retry(old, now, n.cfg.Retention)
					break
				}
			}
		}
	}
}

// expiryNow is the clock lease expiry is measured on: the node's monotonic clock.
func (n *Node) expiryNow() time.Duration {
	if n.sabotage.WallClockExpiry {
		// Deliberately wrong (see Sabotage.WallClockExpiry): a wall reading as a
		// duration since the Unix epoch, which jumps with the wall clock.
		return time.Duration(n.cfg.Clock.Now().UnixNano())
	}
	return n.cfg.Clock.Mono()
}

// applyBackground applies cmds and reports whether all of them were applied without
// error.
func (n *Node) applyBackground(ctx context.Context, cmds []*smv1.Command) bool {
	outs, err := n.batch.applyAll(ctx, cmds)
	if err != nil {
		n.log.Debug("background apply failed", "err", err)
		return false
	}
	ok := true
	for _, o := range outs {
		if o.err == nil {
			o.err = o.res.Err
		}
		if o.err != nil {
			ok = false
			n.log.Debug("background command failed", "err", o.err)
		}
	}
	return ok
}

// plan turns a logged transaction into the driver's plan. recovering marks a plan made
// by a new leader, which presumes abort for anything still PREPARING.
func (n *Node) plan(t *smv1.TxnRecord, recovering bool) twophase.Plan {
	p := twophase.Plan{
		TxID: t.Txid, ProposalID: t.GetProposal().GetProposalId(), Mode: t.GetProposal().GetMode(),
		Shards:         make(map[string][]*smv1.ShardPlayer),
		MatchTTL:       time.Duration(t.GetProposal().GetMatchTtlMs()) * time.Millisecond,
		PrepareTimeout: prepareTimeout(t.GetProposal(), n.cfg.Limits),
		Acked:          t.GetAcked(),
	}
	for _, pl := range proposalPlayers(t.GetProposal()) {
		p.Shards[pl.GetShardId()] = append(p.Shards[pl.GetShardId()],
			&smv1.ShardPlayer{PlayerId: pl.GetPlayerId(), FencingToken: t.GetToken()})
	}
	if recovering {
		p.Recovered, p.Trace = true, recoverTrace(t)
	}
	if twophase.Decided(t.GetState()) {
		p.Decision = t.GetDecision()
	} else if recovering {
		p.AbortNow = &smv1.Decide{Txid: t.Txid, Outcome: smv1.Outcome_OUTCOME_ABORTED,
			Reason: smv1.Reason_REASON_COORDINATOR_FAILOVER, Message: "leader changed before the decision",
			WallUnixMs: n.cfg.Clock.Now().UnixMilli()}
	}
	return p
}

// The phases Config.OnPhase reports.
const (
	PhaseDecide  = "decide"
	PhaseDeliver = "deliver"
)

// driverLog is the driver's view of the log.
type driverLog struct{ n *Node }

func (l driverLog) Decide(ctx context.Context, d *smv1.Decide) (_ *smv1.Decision, err error) {
	ctx, span := startSpan(ctx, spans.RaftDecide)
	if span.IsRecording() {
		span.SetAttributes(decideAttrs(d)...)
	}
	defer func() { spans.End(span, err) }()
	start := l.n.cfg.Clock.Mono()
	res, err := l.n.batch.apply(ctx, &smv1.Command{Op: &smv1.Command_Decide{Decide: d}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if l.n.cfg.OnPhase != nil {
		l.n.cfg.OnPhase(PhaseDecide, l.n.cfg.Clock.Mono()-start)
	}
	return res.Txn.GetDecision(), nil
}

// Acked logs the ack. The driver logs each shard's ack once per run, so the ack that
// completes the txn reports the deliver phase once.
func (l driverLog) Acked(ctx context.Context, txid, shard string) error {
	res, err := l.n.batch.apply(ctx, &smv1.Command{Op: &smv1.Command_Acked{Acked: &smv1.Acked{Txid: txid, ShardId: shard}}})
	if err != nil {
		return err
	}
	if res.Err == nil && l.n.cfg.OnPhase != nil && res.Txn.GetState() == smv1.TxnState_TXN_STATE_DONE {
		if decided := res.Txn.GetDecision().GetDecidedUnixMs(); decided > 0 {
			if d := l.n.cfg.Clock.Now().UnixMilli() - decided; d >= 0 {
				l.n.cfg.OnPhase(PhaseDeliver, time.Duration(d)*time.Millisecond)
			}
		}
	}
	return res.Err
}
