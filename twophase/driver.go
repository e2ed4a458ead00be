package twophase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tracerName is this package's OpenTelemetry instrumentation scope.
const tracerName = "github.com/shardmatch/shardmatch/twophase"

// Log is the driver's view of the replicated log. The coordinator implements it on its
// Raft FSM. Both calls return once the entry is applied (or fail); an error means the
// driver must stop driving the transaction: this node is no longer the leader, or is
// shutting down, and the next leader takes over from the log.
type Log interface {
	// Decide appends the decision and returns the decision actually recorded, which is
	// the first one logged for the txn and may differ from d.
	Decide(ctx context.Context, d *smv1.Decide) (*smv1.Decision, error)
	// Acked records that shard acknowledged the txn's decision.
	Acked(ctx context.Context, txid, shard string) error
}

// DriverConfig configures a Driver. Zero durations take the defaults below.
type DriverConfig struct {
	Transport Transport
	Log       Log
	Clock     clock.Clock
	Logger    *slog.Logger
	// Term is the leader's Raft term, stamped on every command.
	Term uint64
	// ResendInitial is the first resend interval for unanswered Prepares and decisions;
	// it doubles up to ResendMax. Defaults 100ms and 2s.
	ResendInitial time.Duration
	ResendMax     time.Duration
	// UnsafeDeliverBeforeLog is a deliberately broken mode for proving that the
	// invariant checkers work: decisions are sent to shards before they are logged.
	// Never set it outside tests and chaos checker-bite runs.
	UnsafeDeliverBeforeLog bool
}

// Plan is everything the driver needs to drive one transaction, read from the log.
type Plan struct {
	TxID       string
	ProposalID string
	Mode       string
	// Shards maps each shard to its players with their fencing tokens.
	Shards   map[string][]*smv1.ShardPlayer
	MatchTTL time.Duration
	// PrepareTimeout is how long to wait for votes from the moment Start is called.
	PrepareTimeout time.Duration
	// Decision is the logged decision, or nil while the txn is PREPARING.
	Decision *smv1.Decision
	// Acked lists the shards whose ack of Decision is already logged.
	Acked []string
	// AbortNow, when set on a PREPARING txn, skips the prepare phase and logs this
	// decision at once (presumed abort on failover, operator abort).
	AbortNow *smv1.Decide
	// Trace is the span context the transaction's spans hang under: the proposal's
	// intake span on the leader that began it, so that its Prepares, decision and
	// deliveries join the proposal's trace. Zero: no parent.
	Trace trace.SpanContext
	// Recovered marks a plan made by a leader that took the transaction over. Its
	// spans then hang under a new root span, shardmatch.recover, that lives as long as
	// the run and links to Trace (the original proposal's span, if the log kept it)
	// rather than continuing that trace, which belongs to another leader's work.
	Recovered bool
}

// Driver runs the coordinator side of two-phase commit for the transactions a leader
// owns: it sends Prepares, gathers votes against a deadline, logs the decision, and
// delivers it with backoff until every shard acked. One Driver lives for one leadership
// term; Stop it when leadership is lost.
type Driver struct {
	cfg    DriverConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*runChans

	stats DriverStats
}

// runChans reach the goroutine driving one txn.
type runChans struct {
	replies chan *smv1.ShardReply
	preempt chan struct{} // closed to stop waiting for votes
	// redrive asks the delivery loop to send the decision now and restart its backoff.
	redrive chan struct{}
	// settled carries shards whose ack was logged on their behalf (Settle).
	settled chan string
	// sends counts the decision sends per shard (guarded by Driver.mu).
	sends map[string]int
}

// DriverStats counts what the driver did.
type DriverStats struct {
	Started, Committed, Aborted, Timeouts int64
	PrepareSends, DecisionSends           int64
	StrayReplies                          int64
}

// NewDriver returns a driver; it starts nothing until Start.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Transport == nil {
		return nil, errors.New("twophase: DriverConfig.Transport is nil")
	}
	if cfg.Log == nil {
		return nil, errors.New("twophase: DriverConfig.Log is nil")
	}
	if cfg.Clock == nil {
		return nil, errors.New("twophase: DriverConfig.Clock is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ResendInitial <= 0 {
		cfg.ResendInitial = 100 * time.Millisecond
	}
	if cfg.ResendMax < cfg.ResendInitial {
		cfg.ResendMax = max(2*time.Second, cfg.ResendInitial)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Driver{cfg: cfg, ctx: ctx, cancel: cancel, runs: make(map[string]*runChans)}, nil
}

// Start drives p in its own goroutine. Starting a txn that is already running is a
// no-op, so recovery may call it for everything it finds.
func (d *Driver) Start(p Plan) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return
	}
	if _, ok := d.runs[p.TxID]; ok {
		return
	}
	ch := &runChans{replies: make(chan *smv1.ShardReply, 4*len(p.Shards)+4), preempt: make(chan struct{}),
		redrive: make(chan struct{}, 1), settled: make(chan string, len(p.Shards)), sends: make(map[string]int, len(p.Shards))}
	d.runs[p.TxID] = ch
	d.stats.Started++
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.runs, p.TxID)
			d.mu.Unlock()
		}()
		r := &run{d: d, p: p, ch: ch, replies: ch.replies, preempt: ch.preempt, log: d.cfg.Logger.With("txid", p.TxID)}
		ctx, end := r.traceContext(d.ctx)
		defer end()
		r.drive(ctx)
	}()
}

// traceContext returns ctx carrying the span the run's spans hang under (see
// Plan.Trace and Plan.Recovered), and the function that ends a span it started.
func (r *run) traceContext(ctx context.Context) (context.Context, func()) {
	if !r.p.Recovered {
		if r.p.Trace.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, r.p.Trace)
		}
		return ctx, func() {}
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal)}
	if r.p.Trace.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: r.p.Trace}))
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, spans.Recover, opts...)
	if span.IsRecording() {
		span.SetAttributes(spans.TxID.String(r.p.TxID), spans.ProposalID.String(r.p.ProposalID),
			spans.Term.Int64(int64(r.d.cfg.Term)))
	}
	return ctx, func() { span.End() }
}

// HandleReply routes a vote or ack to the goroutine driving its txn. Replies for txns
// this driver is not running (decided and done, or another term's) are dropped: the
// log already holds what they would tell.
func (d *Driver) HandleReply(reply *smv1.ShardReply) {
	var txid string
	switch r := reply.GetReply().(type) {
	case *smv1.ShardReply_Vote:
		txid = r.Vote.GetTxid()
	case *smv1.ShardReply_Ack:
		txid = r.Ack.GetTxid()
	default:
		return
	}
	d.mu.Lock()
	ch, ok := d.runs[txid]
	if !ok {
		d.stats.StrayReplies++
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	select {
	case ch.replies <- reply:
	default: // full: the resend loop will ask again
	}
}

// Preempt stops txid's wait for votes, when another decision (an operator's abort) is
// already in the log: the run proposes an abort, gets back the decision the log
// recorded first, and delivers that at once instead of after the prepare timeout.
func (d *Driver) Preempt(txid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch, ok := d.runs[txid]; ok {
		select {
		case <-ch.preempt:
		default:
			close(ch.preempt)
		}
	}
}

// Redrive asks the run delivering txid's decision to send it now to every shard that
// has not acknowledged it, and to start its backoff over. It reports whether this
// driver is running txid; a run still gathering votes ignores the request.
func (d *Driver) Redrive(txid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.runs[txid]
	if ok {
		select {
		case ch.redrive <- struct{}{}:
		default: // one pending request is enough
		}
	}
	return ok
}

// Settle tells the run delivering txid that shard's acknowledgement is in the log
// already (an operator resolved it on a retired shard's behalf): the run stops sending
// the decision there. It reports whether this driver is running txid.
func (d *Driver) Settle(txid, shard string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.runs[txid]
	if ok {
		select {
		case ch.settled <- shard:
		default: // more settles than shards: the extra ones can only repeat
		}
	}
	return ok
}

// DecisionSends reports how many times this driver has sent txid's decision to each
// shard (the delivery attempts of this leadership term), and whether it runs txid.
func (d *Driver) DecisionSends(txid string) (map[string]int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.runs[txid]
	if !ok {
		return nil, false
	}
	out := make(map[string]int, len(ch.sends))
	for s, n := range ch.sends {
		out[s] = n
	}
	return out, true
}

// Running reports how many transactions are being driven.
func (d *Driver) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

// Stats returns a copy of the counters.
func (d *Driver) Stats() DriverStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Stop abandons every transaction and waits for the goroutines to end. The log keeps
// their state; the next leader resumes them.
func (d *Driver) Stop() {
	d.mu.Lock()
	d.cancel()
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *Driver) count(f func(*DriverStats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// run drives one transaction.
type run struct {
	d       *Driver
	p       Plan
	ch      *runChans
	replies chan *smv1.ShardReply
	preempt chan struct{}
	log     *slog.Logger
}

func (r *run) shards() []string {
	out := make([]string, 0, len(r.p.Shards))
	for s := range r.p.Shards {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (r *run) drive(ctx context.Context) {
	decision := r.p.Decision
	if decision == nil {
		var decide *smv1.Decide
		if r.p.AbortNow != nil {
			decide = r.p.AbortNow
		} else {
			decide = r.prepare(ctx)
			if decide == nil {
				return // stopped
			}
		}
		if r.d.cfg.UnsafeDeliverBeforeLog {
			r.sendDecision(ctx, unloggedDecision(r.p, decide), r.shards())
		}
		var err error
		decision, err = r.d.cfg.Log.Decide(ctx, decide)
		if err != nil {
			r.log.Debug("decide not logged; leaving txn to the next leader", "err", err)
			return
		}
	}
	if decision.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
		r.d.count(func(s *DriverStats) { s.Committed++ })
	} else {
		r.d.count(func(s *DriverStats) { s.Aborted++ })
	}
	r.deliver(ctx, decision)
}

// prepare sends Prepares and waits for the votes; it returns the decision to log, or
// nil if ctx ended first.
func (r *run) prepare(ctx context.Context) *smv1.Decide {
	c := r.d.cfg.Clock
	tally := NewTally(r.shards())
	send := func(shards []string) {
		for _, s := range shards {
			cmd := &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{
				Txid: r.p.TxID, ProposalId: r.p.ProposalID, ShardId: s, Players: r.p.Shards[s],
				Term: r.d.cfg.Term, Mode: r.p.Mode, MatchTtlMs: r.p.MatchTTL.Milliseconds(),
			}}}
			if err := r.d.cfg.Transport.Send(ctx, s, cmd); err != nil {
				r.log.Debug("prepare send failed", "shard", s, "err", err)
			}
			r.d.count(func(st *DriverStats) { st.PrepareSends++ })
		}
	}
	send(tally.Missing())
	deadline := c.NewTimer(r.p.PrepareTimeout)
	defer deadline.Stop()
	backoff := r.d.cfg.ResendInitial
	resend := c.NewTimer(backoff)
	defer resend.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case reply := <-r.replies:
			v := reply.GetVote()
			if v == nil || !tally.Add(v) {
				continue
			}
			if decided, commit := tally.Verdict(); decided {
				if commit {
					return &smv1.Decide{Txid: r.p.TxID, Outcome: smv1.Outcome_OUTCOME_COMMITTED, WallUnixMs: c.Now().UnixMilli()}
				}
				return r.rejected(tally)
			}
		case <-r.preempt:
			return &smv1.Decide{Txid: r.p.TxID, Outcome: smv1.Outcome_OUTCOME_ABORTED,
				Reason: smv1.Reason_REASON_OPERATOR_ABORT, Message: "preempted", WallUnixMs: c.Now().UnixMilli()}
		case <-resend.C():
			send(tally.Missing())
			backoff = min(2*backoff, r.d.cfg.ResendMax)
			resend.Reset(backoff)
		case <-deadline.C():
			r.d.count(func(s *DriverStats) { s.Timeouts++ })
			missing := tally.Missing()
			var details []*smv1.PlayerDetail
			for _, s := range missing {
				for _, p := range r.p.Shards[s] {
					details = append(details, &smv1.PlayerDetail{PlayerId: p.GetPlayerId(), ShardId: s,
						FencingToken: p.GetFencingToken(), Code: "SHARD_TIMEOUT"})
				}
			}
			return &smv1.Decide{Txid: r.p.TxID, Outcome: smv1.Outcome_OUTCOME_ABORTED,
				Reason: smv1.Reason_REASON_SHARD_TIMEOUT, Details: details,
				Message:    fmt.Sprintf("no vote from %v within %s", missing, r.p.PrepareTimeout),
				WallUnixMs: c.Now().UnixMilli()}
		}
	}
}

func (r *run) rejected(t *Tally) *smv1.Decide {
	var details []*smv1.PlayerDetail
	var shards []string
	for _, v := range t.Rejections() {
		shards = append(shards, v.GetShardId())
		for _, rej := range v.GetRejections() {
			details = append(details, &smv1.PlayerDetail{PlayerId: rej.GetPlayerId(), ShardId: v.GetShardId(),
				Code: rej.GetCode(), Message: rej.GetMessage()})
		}
	}
	return &smv1.Decide{Txid: r.p.TxID, Outcome: smv1.Outcome_OUTCOME_ABORTED,
		Reason: smv1.Reason_REASON_SHARD_REJECTED, Details: details,
		Message:    fmt.Sprintf("shard %v voted NO", shards),
		WallUnixMs: r.d.cfg.Clock.Now().UnixMilli()}
}

// deliver sends the logged decision until every shard's ack is logged.
func (r *run) deliver(ctx context.Context, decision *smv1.Decision) {
	pending := make(map[string]bool, len(r.p.Shards))
	for s := range r.p.Shards {
		pending[s] = true
	}
	for _, s := range r.p.Acked {
		delete(pending, s)
	}
	list := func() []string {
		out := make([]string, 0, len(pending))
		for s := range pending {
			out = append(out, s)
		}
		sort.Strings(out)
		return out
	}
	if len(pending) == 0 {
		return
	}
	r.sendDecision(ctx, decision, list())
	backoff := r.d.cfg.ResendInitial
	resend := r.d.cfg.Clock.NewTimer(backoff)
	defer resend.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return
		case reply := <-r.replies:
			a := reply.GetAck()
			if a == nil || !pending[a.GetShardId()] || a.GetOutcome() != decision.GetOutcome() {
				continue
			}
			if err := r.d.cfg.Log.Acked(ctx, r.p.TxID, a.GetShardId()); err != nil {
				r.log.Debug("ack not logged; leaving txn to the next leader", "err", err)
				return
			}
			delete(pending, a.GetShardId())
		case s := <-r.ch.settled:
			delete(pending, s)
		case <-r.ch.redrive:
			if len(pending) > 0 {
				r.sendDecision(ctx, decision, list())
			}
			backoff = r.d.cfg.ResendInitial
			resend.Reset(backoff)
		case <-resend.C():
			r.sendDecision(ctx, decision, list())
			backoff = min(2*backoff, r.d.cfg.ResendMax)
			resend.Reset(backoff)
		}
	}
}

func (r *run) sendDecision(ctx context.Context, decision *smv1.Decision, shards []string) {
	ttl := r.p.MatchTTL.Milliseconds()
	for _, s := range shards {
		var cmd *smv1.ShardCommand
		if decision.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			cmd = &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{
				Txid: r.p.TxID, ShardId: s, Players: r.p.Shards[s], Term: r.d.cfg.Term, MatchTtlMs: ttl}}}
		} else {
			cmd = &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{
				Txid: r.p.TxID, ShardId: s, Players: r.p.Shards[s], Term: r.d.cfg.Term, Reason: decision.GetReason()}}}
		}
		if err := r.d.cfg.Transport.Send(ctx, s, cmd); err != nil {
			r.log.Debug("decision send failed", "shard", s, "err", err)
		}
		r.d.count(func(st *DriverStats) {
			st.DecisionSends++
			r.ch.sends[s]++
		})
	}
}

func unloggedDecision(p Plan, d *smv1.Decide) *smv1.Decision {
	return &smv1.Decision{Txid: p.TxID, ProposalId: p.ProposalID, Outcome: d.GetOutcome(), Reason: d.GetReason()}
}
