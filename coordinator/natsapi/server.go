package natsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
)

// Server is one coordinator node's NATS face. Wire Leading to the node's
// coordinator.Config.OnLeadership and Decided to its OnDecided; Close it before
// closing its connection.
//
// Lock order: mu, then events.mu. Neither is held while calling the Node or NATS's
// blocking calls. Decided (FSM lock held) takes only events.mu and traceMu.
type Server struct {
	cfg       Config
	log       *slog.Logger
	subj      natsutil.Subjects
	leaseSubj string
	reqStream string
	evStream  string
	js        jetstream.JetStream // streams and the intake consumer
	pub       jetstream.JetStream // events, with the Server's own PubAck handling

	intakeSem chan struct{} // bounds proposals in progress, across terms
	reqSem    chan struct{} // bounds status/lease/register requests in progress
	limiter   *rateLimiter  // per proposer identity; nil: unlimited

	mu     sync.Mutex
	cur    *term // nil while not leading
	closed bool

	events  eventQueue
	traceMu sync.Mutex
	traces  map[string]string // proposal_id → its intake span's traceparent, while it is handled

	wg    sync.WaitGroup  // every goroutine the Server started
	life  context.Context // cancelled by Close
	end   context.CancelFunc
	stats counters
}

// term is what a Server holds while its node leads one term.
type term struct {
	n      uint64
	ctx    context.Context // cancelled when the term ends
	cancel context.CancelFunc
	subs   []*nats.Subscription

	iterMu sync.Mutex
	iter   jetstream.MessagesContext
	bound  atomic.Bool // the intake consumer is bound and pulling
}

// New validates cfg, creates or updates the streams (unless cfg.SkipEnsureStreams) and
// returns a Server that serves nothing until Leading(true, term).
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	subj, err := natsutil.NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "natsapi")
	if cfg.NodeID != "" {
		lg = lg.With("node", cfg.NodeID)
	}
	s := &Server{cfg: cfg, log: lg, subj: subj, leaseSubj: LeaseSubject(subj),
		reqStream: subj.Streams().Req, evStream: subj.Streams().Events,
		intakeSem: make(chan struct{}, cfg.IntakeWorkers), reqSem: make(chan struct{}, cfg.RequestWorkers),
		traces:  make(map[string]string),
		limiter: newRateLimiter(cfg.ProposerRate, cfg.ProposerBurst, cfg.MaxProposers, cfg.Clock)}
	s.life, s.end = context.WithCancel(context.Background())
	s.events.init(cfg)
	s.js = cfg.JetStream
	if s.js == nil {
		if s.js, err = jetstream.New(cfg.Conn); err != nil {
			s.end()
			return nil, fmt.Errorf("natsapi: jetstream: %w", err)
		}
	}
	if !cfg.SkipEnsureStreams {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.SetupTimeout)
		defer cancel()
		sc := cfg.Streams
		sc.Prefix = subj.Prefix()
		if err := natsutil.EnsureStreams(ctx, s.js, sc); err != nil {
			s.end()
			return nil, err
		}
	}
	s.pub, err = jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(cfg.PubAckTimeout))
	if err != nil {
		s.end()
		return nil, fmt.Errorf("natsapi: jetstream publisher: %w", err)
	}
	s.wg.Add(1)
	go s.publishLoop()
	return s, nil
}

// Subjects returns the subjects the Server uses.
func (s *Server) Subjects() natsutil.Subjects { return s.subj }

// IsLeading reports whether the Server is serving (between Leading(true) and
// Leading(false)).
func (s *Server) IsLeading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// Serving reports whether the Server is leading and its intake consumer is bound, so
// that a proposal published now will be taken.
func (s *Server) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.bound.Load()
}

// Leading starts (leading=true) or stops serving. The node calls it once it has
// taken over (after its barrier) and when it stops leading: pass the Server to the
// node's Listen (coordinator.Node.Listen), which also tells it of a leadership the node
// already holds. It does not block: subscriptions are made at
// once, the intake consumer is bound in the background, and on stop the proposals in
// progress are cancelled and handed back for redelivery without being waited for.
func (s *Server) Leading(leading bool, n uint64) {
	s.mu.Lock()
	old := s.cur
	s.cur = nil
	if leading && !s.closed {
		s.cur = s.startTerm(n)
		s.stats.leaderships.Add(1)
		s.log.Info("serving the client API", "term", n)
	}
	s.events.setLeading(s.cur != nil, s.cfg.Clock)
	s.mu.Unlock()
	if old != nil {
		s.stopTerm(old)
	}
}

// startTerm subscribes the request subjects and starts the intake. mu is held.
func (s *Server) startTerm(n uint64) *term {
	ctx, cancel := context.WithCancel(context.Background())
	t := &term{n: n, ctx: ctx, cancel: cancel}
	for _, h := range []struct {
		subject, span string
		fn            func(context.Context, *nats.Msg)
	}{
		{s.subj.Status(), spans.APIPrefix + "status", s.handleStatus},
		{s.leaseSubj, spans.APIPrefix + "lease", s.handleLease},
		{s.subj.Register(), spans.APIPrefix + "register", s.handleRegister},
		{s.subj.ShardRegisterAll(), spans.APIPrefix + "register", s.handleRegister},
	} {
		fn, span := h.fn, h.span
		sub, err := s.cfg.Conn.Subscribe(h.subject, func(m *nats.Msg) { s.request(t, m, span, fn) })
		if err != nil {
			// Only a closed connection or a bad subject fails here; the term goes on
			// with what it has, and the next leader serves the rest.
			s.log.Error("cannot subscribe; this leader will not answer it", "subject", h.subject, "err", err)
			continue
		}
		t.subs = append(t.subs, sub)
	}
	if s.cfg.CommitIndex != nil {
		subject := LeaderIndexSubject(s.subj)
		if sub, err := s.cfg.Conn.Subscribe(subject, func(m *nats.Msg) { s.handleLeaderIndex(t, m) }); err != nil {
			s.log.Error("cannot subscribe; followers will not learn this leader's commit index", "subject", subject, "err", err)
		} else {
			t.subs = append(t.subs, sub)
		}
	}
	s.wg.Add(1)
	go s.intake(t)
	if s.cfg.StepDown != nil {
		s.wg.Add(1)
		go s.watchConn(t)
	}
	return t
}

// watchConn hands leadership over while the term lasts if the NATS connection stays
// down for StepDownAfter: a leader cut off from NATS stalls every proposal and every
// shard, and only a leader change lets a node that can reach NATS take over. If every
// node is cut off, leadership moves around every StepDownAfter until NATS is back,
// which costs nothing that was not already lost.
func (s *Server) watchConn(t *term) {
	defer s.wg.Done()
	clk := s.cfg.Clock
	tick := clk.NewTicker(s.cfg.StepDownAfter / 4)
	defer tick.Stop()
	var downSince time.Duration
	down := false
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C():
		}
		now := clk.Mono()
		switch {
		case s.cfg.Conn.IsConnected():
			down = false
		case !down:
			down, downSince = true, now
		case now-downSince >= s.cfg.StepDownAfter:
			s.log.Warn("leading without NATS: handing leadership over", "term", t.n, "disconnected_for", now-downSince)
			s.stats.stepDowns.Add(1)
			if err := s.cfg.StepDown(); err != nil {
				s.log.Warn("leadership transfer failed; trying again", "err", err)
			}
			downSince = now
		}
	}
}

// stopTerm ends t without waiting for its handlers: they see t.ctx cancelled, and
// every proposal buffered or in progress is nak'd for the next leader.
func (s *Server) stopTerm(t *term) {
	t.cancel()
	for _, sub := range t.subs {
		_ = sub.Unsubscribe()
	}
	t.iterMu.Lock()
	if t.iter != nil {
		t.iter.Drain()
	}
	t.iterMu.Unlock()
	s.log.Info("stopped serving the client API", "term", t.n)
}

// Close stops serving, waits for every handler to return (proposals in progress are
// handed back for redelivery), waits up to PubAckTimeout for events already published
// to be confirmed, and releases the publisher. Events still queued are dropped: the
// next leader replays them. The connection stays open.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	old := s.cur
	s.cur = nil
	s.events.setLeading(false, s.cfg.Clock)
	s.mu.Unlock()
	if old != nil {
		s.stopTerm(old)
	}
	s.end()
	s.wg.Wait()
	t := time.NewTimer(s.cfg.PubAckTimeout)
	defer t.Stop()
	select {
	case <-s.pub.PublishAsyncComplete():
	case <-t.C:
	}
	s.pub.CleanupPublisher()
	if s.cfg.Conn.IsClosed() {
		return nil
	}
	if err := s.cfg.Conn.FlushTimeout(s.cfg.PubAckTimeout); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsapi: flush: %w", err)
	}
	return nil
}

// request runs one core request in its own goroutine, bounded by RequestWorkers, as a
// server span named spanName in the requester's trace.
func (s *Server) request(t *term, m *nats.Msg, spanName string, fn func(context.Context, *nats.Msg)) {
	if m.Reply == "" {
		s.stats.noReply.Add(1)
		s.log.Warn("request without a reply subject dropped", "subject", m.Subject, "bytes", len(m.Data))
		return
	}
	if !natsutil.IsInbox(m.Reply) {
		// Never publish an answer where the requester's reply subject says unless it
		// is a client inbox: not on a command, vote or intake subject (confused deputy).
		s.stats.forgedReply.Add(1)
		s.log.Warn("request whose reply subject is not an inbox dropped", "subject", m.Subject, "reply", m.Reply)
		return
	}
	select {
	case s.reqSem <- struct{}{}:
	case <-t.ctx.Done():
		return // the term ended; the requester retries on the next leader
	}
	if !s.spawn(func() {
		defer func() { <-s.reqSem }()
		ctx, cancel := context.WithTimeout(t.ctx, s.cfg.RequestTimeout)
		defer cancel()
		ctx, span := spans.Start(natsutil.ExtractTrace(ctx, m.Header), tracerName, spanName, trace.SpanKindServer)
		defer span.End()
		fn(ctx, m)
	}) {
		<-s.reqSem
	}
}

// spawn runs fn in a goroutine Close waits for, unless the Server is closed.
func (s *Server) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}
