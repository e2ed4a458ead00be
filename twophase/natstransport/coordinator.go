package natstransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// Coordinator defaults.
const (
	// DefaultMaxPending bounds the commands published but not yet confirmed by
	// JetStream. Past it, Send waits up to 200ms for room, then fails.
	DefaultMaxPending = 4096
	// DefaultPubAckTimeout is how long a publish waits for its PubAck before it is
	// counted as failed (the driver resends anyway).
	DefaultPubAckTimeout = 5 * time.Second
)

// CoordinatorConfig configures the coordinator side. Conn and Replies are required.
type CoordinatorConfig struct {
	// Conn is the node's NATS connection. The Coordinator does not close it. Configure
	// it to reconnect forever (nats.MaxReconnects(-1)): subscriptions come back on
	// their own.
	Conn *nats.Conn
	// JetStream manages the streams (nil: jetstream.New(Conn)). Publishing always
	// uses a JetStream context of the Coordinator's own, so that it alone sees the
	// PubAcks it counts.
	JetStream jetstream.JetStream
	// Prefix of the subjects (natsutil.DefaultPrefix if empty).
	Prefix string
	// Logger receives dropped replies and failed publishes. Nil discards.
	Logger *slog.Logger
	// Replies receives every well-formed vote and ack, from NATS's delivery
	// goroutines (one per subject); it must not block for long.
	Replies twophase.ReplyHandler
	// Streams shapes the streams NewCoordinator creates or updates; its Prefix is
	// ignored (Prefix above wins).
	Streams natsutil.StreamConfig
	// SkipEnsureStreams leaves the streams alone (an operator manages them).
	SkipEnsureStreams bool
	// MaxPending bounds unconfirmed publishes (DefaultMaxPending).
	MaxPending int
	// PubAckTimeout bounds the wait for one PubAck (DefaultPubAckTimeout).
	PubAckTimeout time.Duration
	// ResendEpoch is how long resends of one command share a dedupe id
	// (DefaultResendEpoch). Within an epoch JetStream stores a command once; a resend in
	// a later epoch is stored again, so a shard whose reply (on core NATS) was lost
	// hears the command again and repeats its reply, instead of the txn waiting out the
	// whole dedupe window. Duplicates are harmless: shards are idempotent by txid.
	ResendEpoch time.Duration
	// Clock measures resend epochs (nil: the real clock).
	Clock clock.Clock
	// Faults, if set, duplicates and reorders published commands (chaos runs only;
	// see Faults).
	Faults *Faults
	// Signer, if set, signs every command (headers Sm-Signer and Sm-Sig, see package
	// cmdsig), so that shards configured with a Verifier trusting its key accept them.
	// Nil sends commands unsigned. SetSigner changes it while running.
	Signer *cmdsig.Signer
}

// DefaultResendEpoch is CoordinatorConfig.ResendEpoch's default.
const DefaultResendEpoch = time.Second

// CoordinatorStats are a Coordinator's counters since it was made.
type CoordinatorStats struct {
	Sent         uint64 // commands handed to the connection
	SendErrors   uint64 // Send calls that failed: invalid command or shard, closed, stalled
	Stored       uint64 // PubAcks: JetStream stored the command
	Deduplicated uint64 // PubAcks for a resend inside the dedupe window: not stored again
	PubAckErrors uint64 // publishes JetStream did not confirm (timeout, no stream, disconnect)
	Votes        uint64 // votes handed to Replies
	Acks         uint64 // acks handed to Replies
	// Malformed are replies dropped because they could not be decoded, carried no
	// txid, or were of the wrong kind for their subject (an ack on a vote subject).
	Malformed uint64
	// ShardMismatch are replies dropped because their shard_id was not the shard their
	// subject names: someone spoke for another shard.
	ShardMismatch uint64
	// Messages are the messages that carried Sent's commands: one per lone command, one
	// per ShardCommandBatch. Sent/Messages is the mean number of commands a message.
	Messages uint64
	// Batches are ShardCommandBatch messages published (their commands count in Sent);
	// BatchReplies are ShardReplyBatch messages received (their replies count in Votes
	// and Acks).
	Batches, BatchReplies uint64
}

type coordCounters struct {
	sent, sendErrors, stored, deduplicated, pubAckErrors, votes, acks, malformed, shardMismatch, batches, batchReplies atomic.Uint64
	messages                                                                                                           atomic.Uint64
}

// Coordinator is the coordinator node's side of the NATS transport. It implements
// twophase.Transport; Close it before closing its connection.
type Coordinator struct {
	cfg   CoordinatorConfig
	log   *slog.Logger
	subj  natsutil.Subjects
	cmd   string // the command stream's name, sent as Nats-Expected-Stream
	pub   jetstream.JetStream
	subs  []*nats.Subscription
	clk   clock.Clock
	epoch time.Duration

	// mu guards closed against replies in delivery: onReply holds it shared while it
	// registers in inflight, Close takes it exclusively, then waits for inflight.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	stats  coordCounters
	signer atomic.Pointer[cmdsig.Signer]

	batches   atomic.Pointer[func(string) bool] // SetBatches
	sendersMu sync.Mutex
	senders   map[string]*shardSender // by shard, for shards that take batches
	senderWG  sync.WaitGroup
}

var _ twophase.Transport = (*Coordinator)(nil)

// NewCoordinator creates or updates the streams (unless cfg.SkipEnsureStreams),
// subscribes to every shard's votes and acks, and returns the transport. ctx bounds
// the set-up only.
func NewCoordinator(ctx context.Context, cfg CoordinatorConfig) (*Coordinator, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("natstransport: CoordinatorConfig.Conn is nil")
	case cfg.Replies == nil:
		return nil, errors.New("natstransport: CoordinatorConfig.Replies is nil")
	case cfg.MaxPending < 0:
		return nil, fmt.Errorf("natstransport: CoordinatorConfig.MaxPending (%d) must be >= 0", cfg.MaxPending)
	case cfg.PubAckTimeout < 0:
		return nil, fmt.Errorf("natstransport: CoordinatorConfig.PubAckTimeout (%s) must be >= 0", cfg.PubAckTimeout)
	case cfg.ResendEpoch < 0:
		return nil, fmt.Errorf("natstransport: CoordinatorConfig.ResendEpoch (%s) must be >= 0", cfg.ResendEpoch)
	}
	if cfg.ResendEpoch == 0 {
		cfg.ResendEpoch = DefaultResendEpoch
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	subj, err := natsutil.NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.PubAckTimeout == 0 {
		cfg.PubAckTimeout = DefaultPubAckTimeout
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{cfg: cfg, log: lg.With("component", "natstransport.coordinator"), subj: subj, cmd: subj.Streams().Cmd,
		clk: cfg.Clock, epoch: cfg.ResendEpoch, senders: map[string]*shardSender{}}
	c.signer.Store(cfg.Signer)

	if !cfg.SkipEnsureStreams {
		js := cfg.JetStream
		if js == nil {
			if js, err = jetstream.New(cfg.Conn); err != nil {
				return nil, fmt.Errorf("natstransport: jetstream: %w", err)
			}
		}
		sc := cfg.Streams
		sc.Prefix = subj.Prefix()
		if err := natsutil.EnsureStreams(ctx, js, sc); err != nil {
			return nil, err
		}
	}
	c.pub, err = jetstream.New(cfg.Conn,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.PubAckTimeout),
		jetstream.WithPublishAsyncAckHandler(c.onPubAck),
		jetstream.WithPublishAsyncErrHandler(c.onPubErr))
	if err != nil {
		return nil, fmt.Errorf("natstransport: jetstream publisher: %w", err)
	}
	for _, s := range []string{subj.CoordVoteAll(), subj.CoordAckAll()} {
		sub, err := cfg.Conn.Subscribe(s, c.onReply)
		if err != nil {
			c.unsubscribe()
			return nil, fmt.Errorf("natstransport: subscribe %s: %w", s, err)
		}
		c.subs = append(c.subs, sub)
	}
	// The server knows the subscriptions once the flush returns, so a vote sent in
	// answer to the first command is not lost for want of interest.
	if err := flush(ctx, cfg.Conn); err != nil {
		c.unsubscribe()
		return nil, fmt.Errorf("natstransport: flush subscriptions: %w", err)
	}
	return c, nil
}

// SetSigner replaces the key that signs commands from the next Send on (nil: send
// unsigned). Shards must trust the new key before it is used: see cmdsig's rotation.
func (c *Coordinator) SetSigner(s *cmdsig.Signer) { c.signer.Store(s) }

// Subjects returns the subjects this transport uses.
func (c *Coordinator) Subjects() natsutil.Subjects { return c.subj }

// Send publishes cmd to shardID's command subject on the command stream and returns
// without waiting for JetStream's confirmation, which is counted in Stats when it
// comes. The message carries Nats-Msg-Id <txid>/<phase>/<shard>/<epoch> (so resends
// within one ResendEpoch are stored once), Sm-Term, Sm-Signer and Sm-Sig if a Signer
// is set, and the traceparent of its producer
// span, shardmatch.<phase> <shard>, a child of ctx's span if any. It fails for an invalid command or shard id, after
// Close, or when MaxPending publishes stay unconfirmed; a nil error means the command
// was handed to the connection, not that it reached the stream.
func (c *Coordinator) Send(ctx context.Context, shardID string, cmd *smv1.ShardCommand) error {
	ctx, span := startSendSpan(ctx, shardID, cmd)
	err := c.send(ctx, shardID, cmd)
	if err != nil {
		c.stats.sendErrors.Add(1)
	}
	spans.End(span, err)
	return err
}

func (c *Coordinator) send(ctx context.Context, shardID string, cmd *smv1.ShardCommand) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	info := describe(cmd)
	switch {
	case info.phase == "":
		return fmt.Errorf("%w: no prepare, commit or abort", twophase.ErrMalformedCommand)
	case info.txid == "":
		return fmt.Errorf("%w: %s with empty txid", twophase.ErrMalformedCommand, info.phase)
	case info.shard != shardID:
		return fmt.Errorf("%w: %s %s names shard %q, sent to %q", ErrShardMismatch, info.phase, info.txid, info.shard, shardID)
	}
	subject, err := c.subj.ShardCmd(shardID)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("natstransport: encode %s %s: %w", info.phase, info.txid, err)
	}
	h := nats.Header{
		jetstream.MsgIDHeader:          {MsgID(info.txid, info.phase, shardID) + "/" + strconv.FormatInt(int64(c.clk.Mono()/c.epoch), 10)},
		jetstream.ExpectedStreamHeader: {c.cmd},
		HeaderTerm:                     {strconv.FormatUint(info.term, 10)},
	}
	natsutil.InjectTrace(ctx, h)
	q := queuedCmd{data: data, header: h, term: info.term}
	if c.batching(shardID) {
		err = c.enqueue(shardID, subject, q)
	} else {
		_, err = c.publishQueued(subject, []queuedCmd{q})
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("natstransport: publish %s %s to %s: %w", info.phase, info.txid, shardID, err)
	}
	return err
}

func (c *Coordinator) onPubAck(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
	if ack.Duplicate {
		c.stats.deduplicated.Add(1)
		return
	}
	c.stats.stored.Add(1)
}

func (c *Coordinator) onPubErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	c.stats.pubAckErrors.Add(1)
	c.log.Warn("command not confirmed by JetStream; the driver will resend",
		"subject", m.Subject, "msg_id", m.Header.Get(jetstream.MsgIDHeader), "err", err)
}

// onReply decodes one vote or ack and hands it to Replies, or drops and counts it.
func (c *Coordinator) onReply(m *nats.Msg) {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return
	}
	c.inflight.Add(1)
	c.mu.RUnlock()
	defer c.inflight.Done()

	kind, shard, err := c.subj.ParseReply(m.Subject)
	if err != nil {
		c.drop(&c.stats.malformed, m, "bad subject", err)
		return
	}
	if m.Header.Get(HeaderBatch) != "" {
		c.onReplyBatch(m, kind, shard)
		return
	}
	reply := new(smv1.ShardReply)
	if err := proto.Unmarshal(m.Data, reply); err != nil {
		c.drop(&c.stats.malformed, m, "undecodable reply", err)
		return
	}
	c.deliver(m, reply, kind, shard, false)
}

// onReplyBatch hands each reply of a ShardReplyBatch to Replies as if it had come
// alone. A batch may mix votes and acks (it answers a batch of commands), on either
// subject kind; each reply must still name the shard of the subject.
func (c *Coordinator) onReplyBatch(m *nats.Msg, kind natsutil.ReplyKind, shard string) {
	b := new(smv1.ShardReplyBatch)
	if err := proto.Unmarshal(m.Data, b); err != nil {
		c.drop(&c.stats.malformed, m, "undecodable reply batch", err)
		return
	}
	c.stats.batchReplies.Add(1)
	for _, r := range b.GetReplies() {
		c.deliver(m, r, kind, shard, true)
	}
}

// deliver checks one reply against the subject it came on and hands it to Replies,
// or drops and counts it. anyKind accepts a vote or an ack whatever the subject's
// kind (a batch's replies).
func (c *Coordinator) deliver(m *nats.Msg, reply *smv1.ShardReply, kind natsutil.ReplyKind, shard string, anyKind bool) {
	var txid, from string
	counter := &c.stats.votes
	switch v, a := reply.GetVote(), reply.GetAck(); {
	case v != nil && (anyKind || kind == natsutil.ReplyVote):
		txid, from = v.GetTxid(), v.GetShardId()
	case a != nil && (anyKind || kind == natsutil.ReplyAck):
		txid, from, counter = a.GetTxid(), a.GetShardId(), &c.stats.acks
	case kind == natsutil.ReplyVote:
		c.drop(&c.stats.malformed, m, "no vote on a vote subject", nil)
		return
	default:
		c.drop(&c.stats.malformed, m, "no ack on an ack subject", nil)
		return
	}
	if txid == "" {
		c.drop(&c.stats.malformed, m, "reply without txid", nil)
		return
	}
	if from != shard {
		c.drop(&c.stats.shardMismatch, m, fmt.Sprintf("reply for shard %q on shard %q's subject", from, shard), nil)
		return
	}
	counter.Add(1)
	c.cfg.Replies(reply)
}

func (c *Coordinator) drop(counter *atomic.Uint64, m *nats.Msg, why string, err error) {
	counter.Add(1)
	c.log.Warn("dropped reply: "+why, "subject", m.Subject, "bytes", len(m.Data), "err", err)
}

func (c *Coordinator) unsubscribe() {
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
	c.subs = nil
}

// Close stops the subscriptions, waits for replies in delivery, waits up to the
// PubAck timeout for unconfirmed publishes, releases the publisher, and flushes the
// connection. Later Sends fail with ErrClosed. The connection stays open.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.unsubscribe()
	c.inflight.Wait()
	c.senderWG.Wait()
	t := time.NewTimer(c.cfg.PubAckTimeout)
	defer t.Stop()
	select {
	case <-c.pub.PublishAsyncComplete():
	case <-t.C:
	}
	c.pub.CleanupPublisher()
	if c.cfg.Conn.IsClosed() {
		return nil
	}
	if err := c.cfg.Conn.FlushTimeout(c.cfg.PubAckTimeout); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natstransport: flush: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (c *Coordinator) Stats() CoordinatorStats {
	s := &c.stats
	return CoordinatorStats{
		Sent: s.sent.Load(), SendErrors: s.sendErrors.Load(), Stored: s.stored.Load(),
		Deduplicated: s.deduplicated.Load(), PubAckErrors: s.pubAckErrors.Load(),
		Votes: s.votes.Load(), Acks: s.acks.Load(), Malformed: s.malformed.Load(), ShardMismatch: s.shardMismatch.Load(),
		Messages: s.messages.Load(), Batches: s.batches.Load(), BatchReplies: s.batchReplies.Load(),
	}
}

// flushTimeout bounds a flush whose context has no deadline (nats.go insists on one).
const flushTimeout = 10 * time.Second

// flush waits until the server has processed everything sent on nc so far.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}
