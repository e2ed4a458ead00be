package natsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// HeaderReply carries a proposer's reply inbox on a proposal published to the intake
// stream: JetStream answers a publish's own reply subject with its PubAck, so the
// proposer's inbox travels in this header instead (docs/protocol.md).
const HeaderReply = "Sm-Reply"

// DefaultConsumer is the durable intake consumer every coordinator binds to while it
// leads.
const DefaultConsumer = "coordinator-intake"

// Defaults, used where Config leaves a field zero.
const (
	// DefaultIntakeWorkers is how many proposals a leader runs at once: each waits
	// for its decision, so this bounds the transactions in flight from the intake.
	DefaultIntakeWorkers = 256
	// DefaultRequestWorkers is how many status, lease and register requests a leader
	// handles at once.
	DefaultRequestWorkers = 64
	// DefaultAckWait is how long JetStream waits for the leader to settle a proposal
	// before redelivering it. A proposal that takes longer is kept alive with
	// in-progress acks (every AckWait/3), so this only bounds how late the proposals
	// delivered to a leader that crashed or was cut off come back to the next one:
	// with a closed-loop matchmaker all of whose proposals sat in that leader, it is
	// how long matchmaking stalls on a failover, so it is short.
	DefaultAckWait = time.Second
	// DefaultPullExpiry is the lifetime of each pull request the leader's intake
	// makes. A leader cut off from NATS cannot cancel its pull; the server, which
	// notices a dead client only after minutes of missed pings, keeps delivering
	// proposals into it until it expires, and those wait out AckWait. Short pulls
	// bound that black hole to a second of proposals.
	DefaultPullExpiry = time.Second
	// DefaultStepDownAfter is how long a leader may be without its NATS connection
	// before it hands leadership over (when Config.StepDown is set).
	DefaultStepDownAfter = 2 * time.Second
	// DefaultProposeTimeout bounds one Node.Propose: above the longest prepare timeout
	// a proposal may ask for (coordinator.DefaultLimits: 1 minute).
	DefaultProposeTimeout = 90 * time.Second
	// DefaultRequestTimeout bounds one status, lease or register call.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultNakDelay and DefaultNakDelayMax bound the redelivery backoff of a
	// proposal that got no definite answer.
	DefaultNakDelay    = 50 * time.Millisecond
	DefaultNakDelayMax = 2 * time.Second
	// DefaultReplayWindow is how far back a new leader republishes the decisions it
	// saw as a follower. It must stay below the SM_EVENTS dedupe window
	// (natsutil.DefaultDedupeWindow) so that the copies are absorbed.
	DefaultReplayWindow = time.Minute
	// DefaultMaxReplay caps the decisions remembered for replay.
	DefaultMaxReplay = 16384
	// DefaultMaxEventQueue caps the events waiting to be published; past it the
	// oldest are dropped (and counted): events are a delivery buffer, Raft is the truth.
	DefaultMaxEventQueue = 65536
	// DefaultPubAckTimeout bounds the wait for one event's PubAck.
	DefaultPubAckTimeout = 5 * time.Second
	// DefaultSetupTimeout bounds New's stream set-up.
	DefaultSetupTimeout = 10 * time.Second
	// DefaultMaxProposalBytes bounds one proposal as published (before decoding): a
	// 200-player match with attributes fits in a few KiB.
	DefaultMaxProposalBytes = 64 << 10
	// DefaultMaxRequestBytes bounds one status, lease or register request: each holds
	// an id or a shard's description (a few labels), well under 1 KiB in practice.
	DefaultMaxRequestBytes = 16 << 10
	// DefaultMaxProposers caps the proposer identities the rate limiter tracks.
	DefaultMaxProposers = 10000
)

// Node is what the server needs of a coordinator node; *coordinator.Node implements
// it. Errors are the coordinator's typed errors (coordinator.APIError translates them).
type Node interface {
	Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error)
	Status(ctx context.Context, id string) (*smv1.TxnRecord, error)
	Renew(ctx context.Context, txid string) error
	Release(ctx context.Context, txid string) error
	RegisterShard(ctx context.Context, s *smv1.ShardInfo) error
}

var _ Node = (*coordinator.Node)(nil)

// Config configures a Server. Node and Conn are required.
type Config struct {
	// Node is this server's coordinator node.
	Node Node
	// NodeID names the node in logs.
	NodeID string
	// Conn is the node's NATS connection; the Server does not close it. Configure it
	// to reconnect forever (nats.MaxReconnects(-1)).
	Conn *nats.Conn
	// JetStream manages the streams and the intake consumer (nil: jetstream.New(Conn)).
	// Events are published through a JetStream context of the Server's own, so that
	// it alone sees their PubAcks.
	JetStream jetstream.JetStream
	// Prefix of the subjects (natsutil.DefaultPrefix if empty).
	Prefix string
	// Logger receives malformed requests, nak'd proposals and publish failures. Nil
	// discards.
	Logger *slog.Logger
	// Clock times backoffs and the replay window (nil: the machine's clock).
	Clock clock.Clock

	// Streams shapes the streams New creates or updates; its Prefix is ignored.
	Streams natsutil.StreamConfig
	// SkipEnsureStreams leaves the streams alone (an operator manages them).
	SkipEnsureStreams bool

	// IntakeWorkers is how many proposals are handled at once (DefaultIntakeWorkers).
	IntakeWorkers int
	// RequestWorkers is how many status, lease and register requests are handled at
	// once (DefaultRequestWorkers).
	RequestWorkers int
	// Consumer names the durable intake consumer (DefaultConsumer).
	Consumer string
	// AckWait of the intake consumer (DefaultAckWait).
	AckWait time.Duration
	// PullExpiry bounds each pull request of the intake (DefaultPullExpiry, >= 1s).
	PullExpiry time.Duration
	// StepDown, if set, is called when this node leads but its NATS connection has
	// been down for StepDownAfter (DefaultStepDownAfter), and again every
	// StepDownAfter while that lasts. Wire it to coordinator.Node.TransferLeadership:
	// a leader that cannot reach NATS takes no proposals and reaches no shard, while
	// a follower that can would serve them. Nil: the leader stays, however long NATS
	// is out of its reach.
	StepDown      func() error
	StepDownAfter time.Duration
	// MaxAckPending of the intake consumer (2 × IntakeWorkers): proposals delivered
	// and not settled, counting those a deposed leader has not handed back yet.
	MaxAckPending int
	// ProposeTimeout bounds one Node.Propose (DefaultProposeTimeout).
	ProposeTimeout time.Duration
	// RequestTimeout bounds one status, lease or register call (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// NakDelay, doubled per delivery up to NakDelayMax, delays the redelivery of a
	// proposal that got no definite answer (DefaultNakDelay, DefaultNakDelayMax).
	NakDelay, NakDelayMax time.Duration
	// ReplyPrefixes, if set, further restricts the Sm-Reply inboxes answered to
	// subjects with one of these prefixes: a proposal whose inbox has none of them is
	// decided but answered nowhere. Whatever this says, an Sm-Reply that is not a
	// client inbox (natsutil.IsInbox) makes the proposal terminated unread, so that a
	// forged header cannot make the leader publish on a command or vote subject. NATS
	// permissions on the node's user are the stronger guard.
	ReplyPrefixes []string

	// MaxProposalBytes bounds a proposal's encoded size (DefaultMaxProposalBytes): a
	// larger one is answered INVALID (field "proposal") and terminated, never decoded.
	MaxProposalBytes int
	// MaxRequestBytes bounds a status, lease or register request
	// (DefaultMaxRequestBytes): a larger one is answered INVALID (field "request").
	MaxRequestBytes int
	// ProposerRate, if > 0, is how many proposals a second each proposer identity (the
	// last token of its intake subject, natsutil.Subjects.ParsePropose; "" for the plain
	// Propose subject) may make on average; ProposerBurst (default: ProposerRate
	// rounded up) how many at once. A proposal over it is answered RATE_LIMITED and
	// acked, and never reaches the node. Redeliveries are not charged. The buckets are
	// the leader's memory: a new leader starts them full.
	ProposerRate  float64
	ProposerBurst int
	// MaxProposers caps the identities the rate limiter remembers
	// (DefaultMaxProposers); past it the least recently seen is forgotten.
	MaxProposers int

	// ReplayWindow is how far back a new leader republishes decisions
	// (DefaultReplayWindow); keep it below the events stream's dedupe window.
	ReplayWindow time.Duration
	// MaxReplay caps the decisions remembered for replay (DefaultMaxReplay).
	MaxReplay int
	// MaxEventQueue caps events waiting to be published (DefaultMaxEventQueue).
	MaxEventQueue int
	// PubAckTimeout bounds the wait for one event's PubAck (DefaultPubAckTimeout).
	PubAckTimeout time.Duration
	// SetupTimeout bounds New's stream set-up (DefaultSetupTimeout).
	SetupTimeout time.Duration

	// CommitIndex, if set, is the node's Raft commit index: while it leads, the Server
	// answers LeaderIndexSubject with it (and NodeID, which is then required), so that
	// followers can tell how far behind they are (LeaderIndexClient). It must be cheap
	// and must not block (raft.Raft.CommitIndex is an atomic read).
	CommitIndex func() uint64
	// AdminURL is this node's admin API base URL as others reach it (serve
	// --admin-advertise-url), carried in the leader-index answer so that a follower's
	// NOT_LEADER can send callers to the leader's admin API. Optional.
	AdminURL string

	// OnProposal, if set, is called once per proposal taken from the intake: on its
	// first delivery, never on a redelivery (here or at a later leader), so that over
	// all nodes it counts each proposal once. Undecodable proposals count as Malformed
	// instead, except a first delivery handed back untouched at a leadership change,
	// which counts before it is read. A NATS server that loses its consumer state can
	// make a proposal count twice. It must not block.
	OnProposal func()
}

func (c *Config) setDefaults() error {
	switch {
	case c.Node == nil:
		return errors.New("natsapi: Config.Node is nil")
	case c.Conn == nil:
		return errors.New("natsapi: Config.Conn is nil")
	case c.CommitIndex != nil && c.NodeID == "":
		return errors.New("natsapi: Config.CommitIndex needs Config.NodeID (followers check who answered)")
	case c.MaxProposalBytes < 0, c.MaxRequestBytes < 0, c.ProposerRate < 0, c.ProposerBurst < 0, c.MaxProposers < 0:
		return fmt.Errorf("natsapi: Config limits must be >= 0: MaxProposalBytes=%d MaxRequestBytes=%d ProposerRate=%g ProposerBurst=%d MaxProposers=%d",
			c.MaxProposalBytes, c.MaxRequestBytes, c.ProposerRate, c.ProposerBurst, c.MaxProposers)
	case c.ProposerBurst > 0 && c.ProposerRate == 0:
		return errors.New("natsapi: Config.ProposerBurst needs Config.ProposerRate")
	case c.IntakeWorkers < 0, c.RequestWorkers < 0, c.MaxAckPending < 0, c.MaxReplay < 0, c.MaxEventQueue < 0:
		return fmt.Errorf("natsapi: Config counts must be >= 0: IntakeWorkers=%d RequestWorkers=%d MaxAckPending=%d MaxReplay=%d MaxEventQueue=%d",
			c.IntakeWorkers, c.RequestWorkers, c.MaxAckPending, c.MaxReplay, c.MaxEventQueue)
	case c.AckWait < 0, c.PullExpiry < 0, c.StepDownAfter < 0, c.ProposeTimeout < 0, c.RequestTimeout < 0, c.NakDelay < 0, c.NakDelayMax < 0,
		c.ReplayWindow < 0, c.PubAckTimeout < 0, c.SetupTimeout < 0:
		return errors.New("natsapi: Config durations must be >= 0")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&c.IntakeWorkers, DefaultIntakeWorkers)
	defInt(&c.RequestWorkers, DefaultRequestWorkers)
	defInt(&c.MaxAckPending, 2*c.IntakeWorkers)
	defInt(&c.MaxReplay, DefaultMaxReplay)
	defInt(&c.MaxEventQueue, DefaultMaxEventQueue)
	defInt(&c.MaxProposalBytes, DefaultMaxProposalBytes)
	defInt(&c.MaxRequestBytes, DefaultMaxRequestBytes)
	defInt(&c.MaxProposers, DefaultMaxProposers)
	if c.ProposerRate > 0 && c.ProposerBurst == 0 {
		c.ProposerBurst = int(math.Ceil(c.ProposerRate))
	}
	def(&c.AckWait, DefaultAckWait)
	def(&c.PullExpiry, DefaultPullExpiry)
	def(&c.StepDownAfter, DefaultStepDownAfter)
	def(&c.ProposeTimeout, DefaultProposeTimeout)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.NakDelay, DefaultNakDelay)
	def(&c.NakDelayMax, DefaultNakDelayMax)
	def(&c.ReplayWindow, DefaultReplayWindow)
	def(&c.PubAckTimeout, DefaultPubAckTimeout)
	def(&c.SetupTimeout, DefaultSetupTimeout)
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.MaxAckPending < c.IntakeWorkers {
		return fmt.Errorf("natsapi: Config.MaxAckPending (%d) must be >= IntakeWorkers (%d)", c.MaxAckPending, c.IntakeWorkers)
	}
	if c.AckWait < time.Second {
		return fmt.Errorf("natsapi: Config.AckWait (%s) must be >= 1s", c.AckWait)
	}
	if c.PullExpiry < time.Second {
		return fmt.Errorf("natsapi: Config.PullExpiry (%s) must be >= 1s", c.PullExpiry)
	}
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	return nil
}

// LeaseSubject is where match hosts renew and release their matches: <p>.v1.lease.
// (natsutil.Subjects has no builder for it yet.)
func LeaseSubject(s natsutil.Subjects) string { return s.Prefix() + ".v1.lease" }

// validReply reports whether subject can be published to: non-empty tokens, no
// wildcards, no whitespace, and one of prefixes if any are given.
func validReply(subject string, prefixes []string) bool {
	if subject == "" || len(subject) > 1024 || strings.ContainsAny(subject, " \t\r\n") {
		return false
	}
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}
