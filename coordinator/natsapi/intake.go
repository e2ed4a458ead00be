package natsapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// consumerConfig is the intake consumer every node binds to.
//
// DeliverNew, not DeliverAll: the request stream keeps messages after they are acked
// (limits retention), so a consumer created afresh (first start, or after an operator
// deleted it) must not replay old proposals, whose transactions the coordinator may
// have forgotten after its retention: that would make a second match for one
// proposal_id. A proposal published while no consumer existed is re-sent by its
// proposer once the leader says NOT_FOUND (see package client).
func (s *Server) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     s.cfg.Consumer,
		Description: "shardmatch proposals, taken by the coordinator leader",
		// Both the anonymous subject and every proposer's own: the rate limiter keys
		// on the latter's last token.
		FilterSubjects: []string{s.subj.Propose(), s.subj.ProposeAny()},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.cfg.AckWait,
		MaxDeliver:     -1, // the proposer's deadline bounds a proposal, not a count
		MaxAckPending:  s.cfg.MaxAckPending,
	}
}

// intake binds the durable consumer and takes proposals until the term ends,
// re-binding if the consumer goes away under it (deleted, connection closed).
func (s *Server) intake(t *term) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for t.ctx.Err() == nil {
		it, err := s.bind(t.ctx)
		if err == nil {
			t.iterMu.Lock()
			t.iter = it
			stopped := t.ctx.Err() != nil
			t.iterMu.Unlock()
			if stopped {
				it.Drain() // stopTerm may have looked before iter was set
			}
			backoff = 50 * time.Millisecond
			t.bound.Store(true)
			s.consume(t, it)
			t.bound.Store(false)
			if t.ctx.Err() != nil {
				return
			}
			if s.cfg.Conn.IsClosed() {
				// The node is going down (or was killed): not an intake fault.
				s.log.Warn("intake consumer stopped: the NATS connection is closed")
			} else {
				s.log.Error("intake consumer stopped while leading; binding again")
			}
		} else if t.ctx.Err() == nil {
			s.stats.consumeErrors.Add(1)
			s.log.Warn("cannot bind the intake consumer; retrying", "consumer", s.cfg.Consumer, "err", err, "retry_in", backoff)
		}
		if clock.Sleep(t.ctx, s.cfg.Clock, backoff) != nil {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// bind creates or updates the intake consumer, falling back to the existing one if its
// configuration cannot be changed, and starts pulling.
func (s *Server) bind(ctx context.Context) (jetstream.MessagesContext, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	cons, err := s.js.CreateOrUpdateConsumer(cctx, s.reqStream, s.consumerConfig())
	if err != nil {
		var lerr error
		if cons, lerr = s.js.Consumer(cctx, s.reqStream, s.cfg.Consumer); lerr != nil {
			return nil, err
		}
		s.log.Warn("intake consumer exists with another configuration; using it as it is", "err", err)
	}
	return cons.Messages(jetstream.PullMaxMessages(s.cfg.IntakeWorkers), jetstream.PullExpiry(s.cfg.PullExpiry))
}

// consume hands each proposal to a handler goroutine, at most IntakeWorkers at once,
// until the iterator closes. Once the term has ended, what is still buffered is nak'd
// at once so that the next leader gets it without waiting for AckWait.
func (s *Server) consume(t *term, it jetstream.MessagesContext) {
	for {
		slot := false
		select {
		case s.intakeSem <- struct{}{}:
			slot = true
		case <-t.ctx.Done():
		}
		m, err := it.Next()
		if err != nil {
			if slot {
				<-s.intakeSem
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			s.stats.consumeErrors.Add(1)
			s.log.Debug("consuming proposals", "err", err)
			continue
		}
		if !slot || t.ctx.Err() != nil {
			s.handBack(m)
			if slot {
				<-s.intakeSem
			}
			continue
		}
		if !s.spawn(func() {
			defer func() { <-s.intakeSem }()
			s.handleProposal(t, m)
		}) {
			s.handBack(m)
			<-s.intakeSem
		}
	}
}

// handBack naks m without delay: this node no longer leads.
func (s *Server) handBack(m jetstream.Msg) {
	s.stats.returned.Add(1)
	if md, _ := m.Metadata(); s.cfg.OnProposal != nil && (md == nil || md.NumDelivered <= 1) {
		s.cfg.OnProposal() // its later deliveries are redeliveries: count it now
	}
	if err := m.Nak(); err != nil {
		s.stats.ackErrors.Add(1)
	}
}

// handleProposal runs one proposal to a definite answer, or hands it back.
func (s *Server) handleProposal(t *term, m jetstream.Msg) {
	s.stats.proposals.Add(1)
	md, _ := m.Metadata()
	if md != nil && md.NumDelivered > 1 {
		s.stats.redelivered.Add(1)
	}
	reply, ok := s.admit(m, md)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, s.cfg.ProposeTimeout)
	defer cancel()
	ctx, span := s.startIntakeSpan(ctx, m, md)
	var spanErr error
	defer func() { spans.End(span, spanErr) }()

	p := new(smv1.Proposal)
	if err := proto.Unmarshal(m.Data(), p); err != nil {
		spanErr = err
		s.stats.malformed.Add(1)
		s.log.WarnContext(ctx, "malformed proposal terminated", "bytes", len(m.Data()), "err", err)
		s.answer(ctx, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Error{
			Error: invalid("proposal", "undecodable Proposal: "+err.Error())}})
		s.term(m, "malformed proposal")
		return
	}
	if s.cfg.OnProposal != nil && (md == nil || md.NumDelivered <= 1) {
		s.cfg.OnProposal()
	}
	pid := p.GetProposalId()
	if span.IsRecording() {
		span.SetAttributes(spans.ProposalID.String(pid), spans.Mode.String(p.GetMode()))
	}
	// The decision event is published from the FSM's hook, which has no context: it
	// finds the intake span's traceparent here by proposal id.
	if tp, hasTP := natsutil.TraceParentFrom(ctx); hasTP && pid != "" {
		s.traceMu.Lock()
		s.traces[pid] = tp
		s.traceMu.Unlock()
		defer func() {
			s.traceMu.Lock()
			delete(s.traces, pid)
			s.traceMu.Unlock()
		}()
	}
	stopKeepAlive := s.keepAlive(m)
	d, err := s.cfg.Node.Propose(ctx, p)
	stopKeepAlive()
	spanErr = err
	if err == nil && span.IsRecording() {
		span.SetAttributes(spans.TxID.String(d.GetTxid()), spans.Outcome.String(d.GetOutcome().String()),
			spans.Reason.String(d.GetReason().String()))
	}

	switch {
	case err == nil:
		if d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			s.stats.committed.Add(1)
		} else {
			s.stats.aborted.Add(1)
		}
		s.answer(ctx, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Decision{Decision: d}})
		s.ack(m)
	case errors.Is(err, coordinator.ErrInvalid):
		s.stats.invalid.Add(1)
		s.answer(ctx, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Error{Error: s.apiError(err)}})
		s.ack(m) // nothing changed and retrying cannot help
	default:
		// No definite answer: hand it back. The next delivery, here or on the next
		// leader, finds the transaction by proposal_id if it was begun.
		if errors.Is(err, coordinator.ErrOutcomeUnknown) {
			s.stats.unknown.Add(1)
			// Let the proposer start asking Status rather than wait out its attempt.
			s.answer(ctx, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Error{Error: s.apiError(err)}})
		}
		s.nak(t, m, md, pid, err)
	}
}

// admit applies the intake's limits before a proposal is decoded, in this order, and
// reports whether to go on; if not, m is settled and counted, and the node never sees
// it:
//   - an Sm-Reply that is not a client inbox (natsutil.IsInbox): terminated unread and
//     answered nowhere, so that a forged header naming a command or vote subject
//     cannot make the leader publish there (a confused deputy);
//   - over MaxProposalBytes: answered INVALID (field "proposal") and terminated;
//   - over its proposer's rate (first deliveries only: a redelivery may be a proposal
//     the node has begun, which only the node may answer): answered RATE_LIMITED and
//     acked.
//
// reply is the inbox to answer, "" for none (no Sm-Reply, or one ReplyPrefixes
// refuses: the proposal is decided and answered nowhere).
func (s *Server) admit(m jetstream.Msg, md *jetstream.MsgMetadata) (reply string, ok bool) {
	reply = m.Headers().Get(HeaderReply)
	if reply != "" && !natsutil.IsInbox(reply) {
		s.stats.forgedReply.Add(1)
		s.log.Warn("proposal with an Sm-Reply that is not an inbox terminated unread", "subject", m.Subject(), "reply", reply)
		s.term(m, "Sm-Reply is not an inbox")
		return "", false
	}
	if reply != "" && !validReply(reply, s.cfg.ReplyPrefixes) {
		s.stats.badReply.Add(1)
		s.log.Warn("ignoring an unusable Sm-Reply", "reply", reply)
		reply = ""
	}
	if n := len(m.Data()); n > s.cfg.MaxProposalBytes {
		s.stats.oversized.Add(1)
		s.stats.countCode(smv1.ErrorCode_ERROR_CODE_INVALID)
		s.log.Warn("oversized proposal terminated", "subject", m.Subject(), "bytes", n, "limit", s.cfg.MaxProposalBytes)
		s.answer(s.life, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Error{Error: invalid("proposal",
			fmt.Sprintf("%d bytes, over the limit of %d", n, s.cfg.MaxProposalBytes))}})
		s.term(m, "oversized proposal")
		return "", false
	}
	if md != nil && md.NumDelivered > 1 {
		return reply, true
	}
	id, err := s.subj.ParsePropose(m.Subject())
	if err != nil { // the consumer's filter lets no such subject through
		s.stats.malformed.Add(1)
		s.log.Warn("proposal on an unexpected subject terminated", "subject", m.Subject(), "err", err)
		s.term(m, "not a proposal subject")
		return "", false
	}
	if !s.limiter.allow(id) {
		s.stats.rateLimited.Add(1)
		s.stats.countCode(smv1.ErrorCode_ERROR_CODE_RATE_LIMITED)
		s.log.Debug("proposal over its proposer's rate", "proposer", id)
		s.answer(s.life, reply, &smv1.ProposeResponse{Result: &smv1.ProposeResponse_Error{Error: &smv1.ApiError{
			Code: smv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Field: "proposer",
			Message: fmt.Sprintf("proposer %q is over %g proposals/s (burst %d); not read, retry later", id, s.cfg.ProposerRate, s.cfg.ProposerBurst)}}})
		s.ack(m)
		return "", false
	}
	return reply, true
}

// term terminates m: it is never redelivered.
func (s *Server) term(m jetstream.Msg, reason string) {
	if err := m.TermWithReason(reason); err != nil {
		s.stats.ackErrors.Add(1)
	}
}

// answer sends a ProposeResponse to the proposer's inbox, if it gave one. ctx may be
// done: the answer is still worth sending.
func (s *Server) answer(ctx context.Context, reply string, resp *smv1.ProposeResponse) {
	if reply == "" {
		return
	}
	s.respond(ctx, reply, resp)
}

func (s *Server) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		// The answer is in the log: a redelivery gets it again from Propose.
		s.stats.ackErrors.Add(1)
		s.log.Debug("ack failed; the proposal will be redelivered and answered again", "err", err)
		return
	}
	s.stats.acked.Add(1)
}

func (s *Server) nak(t *term, m jetstream.Msg, md *jetstream.MsgMetadata, pid string, cause error) {
	s.stats.nakd.Add(1)
	var delay time.Duration
	if t.ctx.Err() == nil { // still leading: back off; otherwise the next leader takes it now
		n := uint64(1)
		if md != nil && md.NumDelivered > 0 {
			n = md.NumDelivered
		}
		delay = s.cfg.NakDelay
		for i := uint64(1); i < n && delay < s.cfg.NakDelayMax; i++ {
			delay *= 2
		}
		delay = min(delay, s.cfg.NakDelayMax)
	}
	s.log.Debug("proposal handed back for redelivery", "proposal_id", pid, "delay", delay, "err", cause)
	if err := m.NakWithDelay(delay); err != nil {
		s.stats.ackErrors.Add(1)
	}
}

// keepAlive tells JetStream every AckWait/3 that m is still being worked on, so that a
// slow proposal (a long prepare timeout) is not redelivered while it is decided. The
// ticker measures the NATS server's notion of time, so it runs on the real clock.
func (s *Server) keepAlive(m jetstream.Msg) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(s.cfg.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
