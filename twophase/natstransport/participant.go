package natstransport

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// Participant-side defaults, used where ParticipantConfig leaves a field zero.
const (
	// DefaultWorkers is how many txids a shard handles at once. Commands handled at
	// once share journal fsyncs (group commit), so more workers is fewer fsyncs per
	// command under load: 64 against 16 took the dev topology from ~550 to ~650–830
	// matches/s at 64 in flight (docs/performance.md).
	DefaultWorkers = 64
	// DefaultMaxAckPending bounds the commands delivered to a shard and not acked.
	DefaultMaxAckPending = 512
	// DefaultAckWait is how long JetStream waits for a shard's ack before redelivering.
	DefaultAckWait = 30 * time.Second
	// DefaultNakDelay is the first redelivery delay after a handler error.
	DefaultNakDelay = 250 * time.Millisecond
	// DefaultNakDelayMax caps the doubling redelivery delay.
	DefaultNakDelayMax = 10 * time.Second
)

// ParticipantConfig configures one shard's server. Conn, ShardID and Handler are
// required.
type ParticipantConfig struct {
	// Conn is the shard's NATS connection. The ShardServer does not close it. Configure it
	// to reconnect forever (nats.MaxReconnects(-1)): consumption resumes on its own.
	Conn *nats.Conn
	// JetStream creates the consumer and consumes (nil: jetstream.New(Conn)).
	JetStream jetstream.JetStream
	// Prefix of the subjects (natsutil.DefaultPrefix if empty).
	Prefix string
	// ShardID is this shard; it must be a single NATS token (natsutil.ValidateShardID).
	ShardID string
	// Handler answers commands: normally the shard's *twophase.Participant, which
	// brings the journal, idempotency and fence checks.
	Handler twophase.CommandHandler
	// Logger receives dropped commands and handler errors. Nil discards.
	Logger *slog.Logger
	// Workers is how many txids are handled in parallel (DefaultWorkers).
	Workers int
	// AckWait is how long JetStream waits for an ack before redelivering
	// (DefaultAckWait). A shard killed mid-command gets it again after this.
	AckWait time.Duration
	// MaxDeliver caps deliveries per command; 0 or -1 means unbounded, which is right:
	// the coordinator's log is the truth and a handler error is usually transient.
	MaxDeliver int
	// MaxAckPending bounds commands delivered and not yet acked (DefaultMaxAckPending).
	// It must be > 1 for txids to be handled in parallel.
	MaxAckPending int
	// NakDelay is the redelivery delay after a handler error, doubled per delivery up
	// to NakDelayMax (DefaultNakDelay, DefaultNakDelayMax).
	NakDelay, NakDelayMax time.Duration
	// Querier, if set, makes the ShardServer ask the coordinator for the outcome of every
	// in-doubt txid of Recoverer at start, retrying with
	// RecoverInterval..RecoverIntervalMax backoff until none is left. Commands from
	// the consumer settle them too, so it is optional.
	Querier twophase.OutcomeQuerier
	// Recoverer holds the in-doubt txids Querier settles. Nil means Handler, which
	// must then implement Recoverer (*twophase.Participant does): Serve fails if
	// Querier is set and neither does, so a wrapper around the Participant cannot
	// switch recovery off unnoticed.
	Recoverer Recoverer
	// RecoverInterval and RecoverIntervalMax bound the recovery backoff (1s, 30s).
	RecoverInterval, RecoverIntervalMax time.Duration
	// Clock times the recovery backoff (nil: the machine's clock).
	Clock clock.Clock
	// Faults, if set, duplicates and reorders published votes and acks (chaos runs
	// only; see Faults).
	Faults *Faults
	// Verifier, if set, makes signatures mandatory: a command that is unsigned, signed
	// by a key Verifier does not trust, or whose signature does not match this shard's
	// command subject and the payload is never decoded nor handed to Handler. It is
	// terminated (not redelivered), counted in ShardServerStats (Unsigned, UnknownSigner,
	// BadSignature) and logged, at most once a second per reason. Nil accepts every
	// command, signed or not. SetVerifier changes it while running.
	Verifier *cmdsig.Verifier
}

func (c *ParticipantConfig) setDefaults() error {
	switch {
	case c.Conn == nil:
		return errors.New("natstransport: ParticipantConfig.Conn is nil")
	case c.Handler == nil:
		return errors.New("natstransport: ParticipantConfig.Handler is nil")
	case c.Workers < 0, c.MaxAckPending < 0, c.AckWait < 0, c.NakDelay < 0, c.NakDelayMax < 0,
		c.RecoverInterval < 0, c.RecoverIntervalMax < 0:
		return fmt.Errorf("natstransport: ParticipantConfig values must be >= 0: %+v", *c)
	case c.MaxAckPending == 1:
		return errors.New("natstransport: ParticipantConfig.MaxAckPending is 1: that serialises every txid; use > 1")
	}
	if err := natsutil.ValidateShardID(c.ShardID); err != nil {
		return fmt.Errorf("natstransport: ParticipantConfig.ShardID: %w", err)
	}
	if c.Querier != nil && c.Recoverer == nil {
		r, ok := c.Handler.(Recoverer)
		if !ok {
			return fmt.Errorf("natstransport: ParticipantConfig.Querier is set but Handler (%T) is not a Recoverer: set Recoverer to the shard's *twophase.Participant", c.Handler)
		}
		c.Recoverer = r
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.AckWait, DefaultAckWait)
	def(&c.NakDelay, DefaultNakDelay)
	def(&c.NakDelayMax, DefaultNakDelayMax)
	def(&c.RecoverInterval, time.Second)
	def(&c.RecoverIntervalMax, 30*time.Second)
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = -1
	}
	return nil
}

// ConsumerName is the durable consumer of a shard on the command stream: shard-<id>.
func ConsumerName(shardID string) string { return "shard-" + shardID }

// ShardServer consumes one shard's commands from its durable consumer and answers them
// through the Handler. Stop it with Drain (graceful) or Close.
//
// Structure: one dispatcher goroutine takes messages from the consumer in stream
// order, decodes them and routes each to worker hash(txid) mod Workers; each worker
// handles its queue in order. So one txid's commands never overlap and keep stream
// order, and different txids run in parallel.
type ShardServer struct {
	cfg       ParticipantConfig
	log       *slog.Logger
	voteSubj  string
	ackSubj   string
	cmdSubj   string
	consumer  jetstream.Consumer
	iter      jetstream.MessagesContext
	queues    []chan job
	workers   sync.WaitGroup
	hctx      context.Context // handlers' context: cancelled by Close or a Drain deadline
	hcancel   context.CancelFunc
	rcancel   context.CancelFunc // stops recovery
	recovered chan struct{}      // closed when the recovery goroutine is gone
	done      chan struct{}      // closed when everything has stopped
	stopOnce  sync.Once
	stopCh    chan struct{} // closed by the first Drain or Close
	stats     serverCounters
	verifier  atomic.Pointer[cmdsig.Verifier]
	sigLog    [3]logLimiter // by reason: unsigned, unknown signer, bad signature
}

type job struct {
	msg   jetstream.Msg
	cmd   *smv1.ShardCommand
	info  cmdInfo
	tp    string    // traceparent, "" if none
	batch *cmdBatch // the batch the command came in, nil if it came alone
}

// Serve creates or reuses the shard's durable pull consumer shard-<id> on the command
// stream (which must exist: the coordinator creates it), filtered to the shard's
// subject with explicit acks, and starts consuming. ctx bounds the set-up only.
func Serve(ctx context.Context, cfg ParticipantConfig) (*ShardServer, error) {
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
	s := &ShardServer{cfg: cfg, log: lg.With("component", "natstransport.server", "shard", cfg.ShardID),
		recovered: make(chan struct{}), done: make(chan struct{}), stopCh: make(chan struct{})}
	s.verifier.Store(cfg.Verifier)
	if cfg.Verifier != nil {
		s.log.Info("command signatures required", "trusted_keys", cfg.Verifier.Keys())
	}
	s.cmdSubj, _ = subj.ShardCmd(cfg.ShardID) // the id is validated
	s.voteSubj, _ = subj.CoordVote(cfg.ShardID)
	s.ackSubj, _ = subj.CoordAck(cfg.ShardID)
	js := cfg.JetStream
	if js == nil {
		if js, err = jetstream.New(cfg.Conn); err != nil {
			return nil, fmt.Errorf("natstransport: jetstream: %w", err)
		}
	}
	stream := subj.Streams().Cmd
	s.consumer, err = js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       ConsumerName(cfg.ShardID),
		Description:   "shardmatch commands for shard " + cfg.ShardID,
		FilterSubject: s.cmdSubj,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("natstransport: consumer %s on %s: %w", ConsumerName(cfg.ShardID), stream, err)
	}
	// Pulling more than MaxAckPending would only buffer what the server will not send.
	s.iter, err = s.consumer.Messages(jetstream.PullMaxMessages(cfg.MaxAckPending))
	if err != nil {
		return nil, fmt.Errorf("natstransport: consume %s: %w", ConsumerName(cfg.ShardID), err)
	}
	s.hctx, s.hcancel = context.WithCancel(context.Background())
	var rctx context.Context
	rctx, s.rcancel = context.WithCancel(context.Background())
	s.queues = make([]chan job, cfg.Workers)
	for i := range s.queues {
		s.queues[i] = make(chan job, cfg.MaxAckPending)
		s.workers.Add(1)
		go s.work(s.queues[i])
	}
	go s.recoverLoop(rctx)
	go s.dispatch()
	return s, nil
}

// dispatch takes messages until the iterator closes (Drain, Close, connection closed,
// consumer deleted), then lets the workers finish and marks the ShardServer done.
func (s *ShardServer) dispatch() {
	defer close(s.done)
	for {
		m, err := s.iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			s.stats.consumeErrors.Add(1)
			s.log.Warn("consuming commands", "err", err)
			continue
		}
		s.route(m)
	}
	if s.hctx.Err() == nil && !s.stopRequested() {
		s.log.Error("command consumer stopped on its own (connection closed or consumer deleted); the shard takes no commands until served again")
	}
	for _, q := range s.queues {
		close(q)
	}
	s.workers.Wait()
	s.hcancel()
	s.rcancel()
	<-s.recovered
}

// stopRequested reports whether Drain or Close was called.
func (s *ShardServer) stopRequested() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return false
	}
}

// route decodes m and queues it to its txid's worker, or terminates it.
func (s *ShardServer) route(m jetstream.Msg) {
	s.stats.received.Add(1)
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		s.stats.redelivered.Add(1)
	}
	// Authenticate before decoding: what a forger sends never reaches the decoder.
	if v := s.verifier.Load(); v != nil {
		if err := v.VerifyHeader(s.cmdSubj, m.Data(), m.Headers()); err != nil {
			s.refuseSignature(m, err)
			return
		}
	}
	if m.Headers().Get(HeaderBatch) != "" {
		s.routeBatch(m)
		return
	}
	cmd := new(smv1.ShardCommand)
	if err := proto.Unmarshal(m.Data(), cmd); err != nil {
		s.terminate(m, &s.stats.malformed, "undecodable command", err)
		return
	}
	info := describe(cmd)
	if why, counter := s.refusal(info, m.Subject()); why != "" {
		s.terminate(m, counter, why, nil)
		return
	}
	tp, _ := natsutil.TraceParent(m.Headers())
	s.enqueue(job{msg: m, cmd: cmd, info: info, tp: tp})
}

// refusal says why a decoded command that came on subject must not run here ("" if
// it may) and which counter counts it; a lone command and each command of a batch
// meet the same rules.
func (s *ShardServer) refusal(info cmdInfo, subject string) (string, *atomic.Uint64) {
	switch {
	case info.phase == "":
		return "no prepare, commit or abort", &s.stats.malformed
	case info.txid == "":
		return info.phase + " without txid", &s.stats.malformed
	case info.shard != s.cfg.ShardID || subject != s.cmdSubj:
		return fmt.Sprintf("%s %s for shard %q on %s", info.phase, info.txid, info.shard, subject), &s.stats.wrongShard
	}
	return "", nil
}

// enqueue hands j to the worker of its txid, so that one txid's commands run one at
// a time in the order they arrived.
func (s *ShardServer) enqueue(j job) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(j.info.txid))
	s.queues[h.Sum32()%uint32(len(s.queues))] <- j
}

func (s *ShardServer) work(q <-chan job) {
	defer s.workers.Done()
	for j := range q {
		if s.hctx.Err() != nil {
			// Closing: hand it back for the next server rather than wait for AckWait.
			s.stats.returned.Add(1)
			if j.batch != nil {
				s.batchDone(j.batch, nil, errReturned)
				continue
			}
			_ = j.msg.Nak()
			continue
		}
		s.handle(j)
	}
}

// handle runs one command through the Handler, publishes the reply, then acks.
func (s *ShardServer) handle(j job) {
	ctx := s.hctx
	if j.tp != "" {
		ctx = natsutil.WithTraceParent(ctx, j.tp)
	}
	ctx, span := s.startHandleSpan(ctx, j)
	reply, err := s.cfg.Handler.HandleCommand(ctx, j.cmd)
	defer endHandleSpan(span, reply, err) // after the reply is published and the command acked
	if j.batch != nil {
		if err != nil {
			s.log.WarnContext(ctx, "handler failed on a batched command", "txid", j.info.txid, "phase", j.info.phase,
				"permanent", permanent(err), "err", err)
		}
		s.batchDone(j.batch, reply, err)
		return
	}
	if err != nil {
		if permanent(err) {
			s.terminate(j.msg, &s.stats.rejected, "handler refused "+j.info.phase+" "+j.info.txid, err)
			return
		}
		s.stats.handlerErrors.Add(1)
		delay := s.nakDelay(j.msg)
		s.log.WarnContext(ctx, "handler failed; redelivering later", "txid", j.info.txid, "phase", j.info.phase, "delay", delay, "err", err)
		if nerr := j.msg.NakWithDelay(delay); nerr != nil {
			s.stats.ackErrors.Add(1)
		}
		return
	}
	if reply != nil {
		tp, _ := natsutil.TraceParentFrom(ctx) // the reply continues the handling span
		if err := s.publish(reply, tp); err != nil {
			// The effect is journaled; a redelivery answers from the journal.
			s.stats.publishErrors.Add(1)
			s.log.WarnContext(ctx, "publishing reply failed; redelivering", "txid", j.info.txid, "err", err)
			_ = j.msg.NakWithDelay(s.nakDelay(j.msg))
			return
		}
	}
	s.stats.handled.Add(1)
	if err := j.msg.Ack(); err != nil {
		s.stats.ackErrors.Add(1)
		s.log.Debug("ack failed; the command will be redelivered and answered again", "txid", j.info.txid, "err", err)
	}
}

// permanent tells the errors a redelivery cannot cure from transient ones.
func permanent(err error) bool {
	return errors.Is(err, twophase.ErrMalformedCommand) || errors.Is(err, twophase.ErrWrongShard) ||
		errors.Is(err, twophase.ErrConflictingDecision)
}

func (s *ShardServer) publish(reply *smv1.ShardReply, tp string) error {
	var subject string
	switch {
	case reply.GetVote() != nil:
		subject = s.voteSubj
		defer s.stats.votes.Add(1)
	case reply.GetAck() != nil:
		subject = s.ackSubj
		defer s.stats.acks.Add(1)
	default:
		return errors.New("handler returned a reply with neither vote nor ack")
	}
	data, err := proto.Marshal(reply)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: data}
	if tp != "" {
		msg.Header = nats.Header{natsutil.TraceParentHeader: {tp}}
	}
	return s.publishReply(msg)
}

func (s *ShardServer) nakDelay(m jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	d := s.cfg.NakDelay
	for i := uint64(1); i < n && d < s.cfg.NakDelayMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.NakDelayMax)
}

func (s *ShardServer) terminate(m jetstream.Msg, counter interface{ Add(uint64) uint64 }, why string, err error) {
	counter.Add(1)
	md, _ := m.Metadata()
	var seq uint64
	if md != nil {
		seq = md.Sequence.Stream
	}
	s.log.Error("dropping command: "+why, "subject", m.Subject(), "stream_seq", seq, "bytes", len(m.Data()), "err", err)
	if terr := m.TermWithReason(why); terr != nil {
		s.stats.ackErrors.Add(1)
	}
}

// SetVerifier replaces the keys commands must be signed with, from the next command
// on (nil: accept unsigned commands). It lets a shard trust a new key without a
// restart; see ParticipantConfig.Verifier.
func (s *ShardServer) SetVerifier(v *cmdsig.Verifier) { s.verifier.Store(v) }

// refuseSignature terminates a command whose signature did not verify (err is a
// *cmdsig.Error) and counts it; the log is rate-limited, as a forger can send many.
func (s *ShardServer) refuseSignature(m jetstream.Msg, err error) {
	i, counter := 2, &s.stats.badSignature
	switch {
	case errors.Is(err, cmdsig.ErrUnsigned):
		i, counter = 0, &s.stats.unsigned
	case errors.Is(err, cmdsig.ErrUnknownSigner):
		i, counter = 1, &s.stats.unknownSigner
	}
	counter.Add(1)
	if ok, suppressed := s.sigLog[i].allow(s.cfg.Clock.Mono()); ok {
		var seq uint64
		if md, _ := m.Metadata(); md != nil {
			seq = md.Sequence.Stream
		}
		s.log.Error("dropping command: signature refused; it is not applied", "subject", m.Subject(), "stream_seq", seq,
			"bytes", len(m.Data()), "err", err, "suppressed_since_last", suppressed)
	}
	reason := "signature refused"
	var e *cmdsig.Error
	if errors.As(err, &e) {
		reason = e.Reason.Error()
	}
	if terr := m.TermWithReason(reason); terr != nil {
		s.stats.ackErrors.Add(1)
	}
}

// logLimiter lets one log line through per logInterval and counts the others.
type logLimiter struct {
	mu         sync.Mutex
	next       time.Duration // monotonic time of the next line allowed
	started    bool
	suppressed uint64
}

const logInterval = time.Second

// allow reports whether a line may be logged at now, and how many were suppressed
// since the last one.
func (l *logLimiter) allow(now time.Duration) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started && now < l.next {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.started, l.next, l.suppressed = true, now+logInterval, 0
	return true, n
}
