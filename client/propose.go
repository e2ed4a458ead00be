package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Propose asks the coordinator to form the match p and returns its Decision: COMMITTED,
// or ABORTED with a reason. A policy denial, a busy player or a shard's refusal is an
// ABORTED Decision, not an error.
//
// It publishes p to the intake stream with Nats-Msg-Id = proposal_id and waits for the
// leader's answer on a reply subject of its own. When no answer comes within
// AttemptTimeout it asks Status(proposal_id): a decided transaction is returned, one
// still PREPARING is waited for, and only when the leader has no record of the
// proposal is it published again, with the same proposal_id. The coordinator makes at
// most one transaction per proposal_id, so Propose never makes two.
//
// Errors: *InvalidError (ErrInvalid) when the coordinator refused p as malformed, in
// which case nothing changed; *OutcomeUnknownError (ErrOutcomeUnknown) when ctx ended
// before a definite answer: the match may still be formed, so retry with the same
// proposal_id or ask Status; ErrClosed after Close.
//
// Tracing: the call is one client span, shardmatch.propose, child of ctx's span if
// any, whose context travels with the proposal (and any re-send or status check), so
// the coordinator's intake, policy, Raft and shard spans join the caller's trace.
func (c *Client) Propose(ctx context.Context, p *smv1.Proposal) (d *smv1.Decision, err error) {
	ctx, span := startSpan(ctx, spans.Propose)
	if span.IsRecording() {
		span.SetAttributes(spans.ProposalID.String(p.GetProposalId()), spans.Mode.String(p.GetMode()))
	}
	defer func() {
		setDecision(span, d)
		var u *OutcomeUnknownError
		if errors.As(err, &u) && u.TxID != "" && span.IsRecording() {
			span.SetAttributes(spans.TxID.String(u.TxID))
		}
		spans.End(span, err)
	}()
	return c.propose(ctx, p)
}

func (c *Client) propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	if p == nil {
		return nil, &InvalidError{Field: "proposal", Message: "missing"}
	}
	pid := p.GetProposalId()
	if pid == "" {
		return nil, &InvalidError{Field: "proposal_id", Message: "empty: the proposal id is the idempotency key"}
	}
	data, err := proto.Marshal(p)
	if err != nil {
		return nil, &InvalidError{Field: "proposal", Message: "cannot encode: " + err.Error()}
	}
	inbox, replies, release, err := c.mux.open()
	if err != nil {
		return nil, err
	}
	defer release()
	r := &proposeRun{c: c, pid: pid, data: data, inbox: inbox, hdr: header(ctx)}

	if err := r.publish(ctx, false); err != nil {
		if errors.Is(err, ErrInvalid) {
			return nil, err
		}
	}
	wait := c.cfg.AttemptTimeout
	switch {
	case !r.stored:
		wait = c.cfg.RetryBackoff
	case r.lastDup:
		// The stream already had this proposal_id: a repeat of a proposal that is
		// probably decided. Ask at once rather than wait for an answer that the
		// deduplicated publish will not bring.
		wait = 0
	}
	backoff := c.cfg.RetryBackoff
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		check := false
		select {
		case m, ok := <-replies:
			if !ok {
				return nil, r.unknown(ErrClosed)
			}
			d, err, definite := r.answer(m)
			if definite {
				return d, err
			}
			check = true // OUTCOME_UNKNOWN and the like: ask Status now
		case <-timer.C:
			check = true
		case <-ctx.Done():
			return nil, r.unknown(ctx.Err())
		}
		if !check {
			continue
		}
		d, definite := r.check(ctx)
		if d != nil {
			return d, nil
		}
		if ctx.Err() != nil {
			return nil, r.unknown(ctx.Err())
		}
		if definite {
			wait, backoff = c.cfg.AttemptTimeout, c.cfg.RetryBackoff
		} else { // no leader answered: ask again sooner
			wait, backoff = backoff, min(2*backoff, c.cfg.AttemptTimeout)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// proposeRun is the state of one Propose call.
type proposeRun struct {
	c     *Client
	pid   string
	data  []byte
	inbox string
	hdr   nats.Header
	txid  string // from a Status answer, once known
	last  error  // the last reason there was no answer

	sent     int  // publishes attempted
	stored   bool // a publish was confirmed by the stream (stored or duplicate)
	lastDup  bool // the last confirmed publish was a duplicate of a stored one
	freshIDs int  // fresh message ids used
}

// msgID is the Nats-Msg-Id of the current publish: the proposal id, then
// "<proposal id>/<n>" once the stream's dedupe is known to swallow re-sends of a
// message the leader never saw (see check).
func (r *proposeRun) msgID() string {
	if r.freshIDs == 0 {
		return r.pid
	}
	return r.pid + "/" + strconv.Itoa(r.freshIDs)
}

// publish sends the proposal to the intake stream and waits for the PubAck.
func (r *proposeRun) publish(ctx context.Context, fresh bool) error {
	if fresh {
		r.freshIDs++
	}
	r.sent++
	if r.sent > 1 {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("republish", trace.WithAttributes(attribute.String("messaging.message.id", r.msgID())))
		}
	}
	h := nats.Header{HeaderReply: {r.inbox}}
	for k, v := range r.hdr {
		h[k] = v
	}
	msg := &nats.Msg{Subject: r.c.intake, Data: r.data, Header: h}
	pctx, cancel := context.WithTimeout(ctx, r.c.cfg.AttemptTimeout)
	defer cancel()
	ack, err := r.c.js.PublishMsg(pctx, msg, jetstream.WithMsgID(r.msgID()), jetstream.WithExpectStream(r.c.reqStream))
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return &InvalidError{Field: "proposal", Message: err.Error()}
		}
		r.last = fmt.Errorf("publish: %w", err)
		r.c.log.Debug("proposal not confirmed by the stream; will re-send", "proposal_id", r.pid, "err", err)
		return err
	}
	r.stored, r.lastDup = true, ack.Duplicate
	return nil
}

// answer interprets one message on the reply subject. definite is false for answers
// that call for a Status check (OUTCOME_UNKNOWN, NOT_LEADER, UNAVAILABLE, garbage).
func (r *proposeRun) answer(m *nats.Msg) (d *smv1.Decision, err error, definite bool) {
	resp := new(smv1.ProposeResponse)
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		r.last = fmt.Errorf("undecodable answer: %w", err)
		return nil, nil, false
	}
	if d := resp.GetDecision(); d != nil {
		if d.GetProposalId() != "" && d.GetProposalId() != r.pid {
			r.last = fmt.Errorf("answer for proposal %q", d.GetProposalId())
			return nil, nil, false
		}
		return d, nil, true
	}
	e := resp.GetError()
	if e.GetTxid() != "" {
		r.txid = e.GetTxid()
	}
	if err := apiErr("propose "+r.pid, e); err != nil {
		return nil, err, true
	}
	r.last = fmt.Errorf("coordinator answered %s: %s", e.GetCode(), e.GetMessage())
	return nil, nil, false
}

// check asks the leader what became of the proposal. It returns the decision if there
// is one; definite says a leader answered (PREPARING or NOT_FOUND).
//
// NOT_FOUND means the leader has not begun the proposal: it is still queued behind
// others, was published while no intake consumer existed, or the stream lost it. The
// proposal is re-sent with the same message id first, which the stream's dedupe
// absorbs if it still holds it. If the stream reports that re-send a duplicate and the
// leader still has no record of the proposal at the next check, the stream holds no
// copy the leader will see (or its dedupe remembers a lost one), so the next re-send
// takes a fresh message id. Either way the proposal_id is the same, so a copy the
// leader does see is answered from the first transaction.
func (r *proposeRun) check(ctx context.Context) (d *smv1.Decision, definite bool) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("status check")
	}
	sctx, cancel := context.WithTimeout(ctx, r.c.cfg.StatusTimeout)
	defer cancel()
	rec, err := r.c.statusOnce(sctx, r.pid)
	switch {
	case err == nil:
		r.txid = rec.GetTxid()
		if decided(rec) {
			return rec.GetDecision(), true
		}
		return nil, true // PREPARING: the leader will answer, or the next check will
	case errors.Is(err, ErrNotFound):
		_ = r.publish(ctx, r.stored && r.lastDup)
		return nil, true
	default:
		r.last = err
		if !r.stored { // never confirmed: the stream may not have it at all
			_ = r.publish(ctx, false)
		}
		return nil, false
	}
}

func (r *proposeRun) unknown(cause error) error {
	if r.last != nil && !errors.Is(cause, ErrClosed) {
		cause = fmt.Errorf("%w (last: %v)", cause, r.last)
	}
	return &OutcomeUnknownError{ProposalID: r.pid, TxID: r.txid, Cause: cause}
}

// decided reports whether rec carries its final outcome.
func decided(rec *smv1.TxnRecord) bool {
	o := rec.GetDecision().GetOutcome()
	return o == smv1.Outcome_OUTCOME_COMMITTED || o == smv1.Outcome_OUTCOME_ABORTED
}
