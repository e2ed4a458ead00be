package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Policy evaluates a proposal before it may begin. policy.Engine implements it; a nil
// Policy admits everything.
type Policy interface {
	Evaluate(ctx context.Context, p *smv1.Proposal, shards []*smv1.ShardInfo) (*smv1.PolicyVerdict, error)
}

// Limits bound what a proposal may ask for. Requests outside them are INVALID.
type Limits struct {
	MaxPlayers            int           // players per proposal
	MaxProposalBytes      int           // encoded size of a proposal
	MaxIDLength           int           // proposal, player and shard ids
	MaxMatchTTL           time.Duration // match_ttl_ms
	DefaultPrepareTimeout time.Duration // when prepare_timeout_ms is 0
	MaxPrepareTimeout     time.Duration
}

// DefaultLimits are sized for real games: a 100-player battle royale fits.
func DefaultLimits() Limits {
	return Limits{MaxPlayers: 200, MaxProposalBytes: 256 << 10, MaxIDLength: 128,
		MaxMatchTTL: 24 * time.Hour, DefaultPrepareTimeout: 5 * time.Second, MaxPrepareTimeout: time.Minute}
}

// DefaultMaxRetained is Config.MaxRetained's default: 250,000 finished transactions,
// about 80 MiB of FSM heap (323 B each), ten minutes at 400 matches/s, 50 s at 5,000.
const DefaultMaxRetained = 250_000

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// NodeID is this node's Raft server id.
	NodeID string
	// DataDir holds the Raft log (BoltStore, raft.db) and snapshots. Required.
	DataDir string
	// RaftTransport carries Raft between nodes (raft.NewTCPTransport in production,
	// raft.InmemTransport in tests). Required.
	RaftTransport raft.Transport
	// Bootstrap, with Peers, forms a new cluster if DataDir holds no Raft state.
	Bootstrap bool
	Peers     []raft.Server
	// Participants builds the transport to shards, given where replies must go. Required.
	Participants TransportFactory

	Clock  clock.Clock
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log (default: discarded below warn to
	// Logger's handler is not possible, so it goes to this writer; nil means io.Discard).
	RaftLogOutput io.Writer
	Policy        Policy
	Observer      Observer
	Limits        Limits
	// OnLeadership, if set, is called when this node has finished taking over as leader
	// (leading=true, after the barrier and recovery started) and when it stops leading:
	// for logs and metrics known before the node. A front end made after the node (its
	// NATS API server) uses Node.Listen instead. It must not block for long.
	OnLeadership func(leading bool, term uint64)
	// OnDecided, if set, sees every decision as it is applied on this node (every
	// replica calls it), with the FSM lock held: it must not block or call the node.
	OnDecided func(*smv1.Decision)
	// OnPhase, if set, is called on the leader with how long a transaction phase took:
	// PhaseDecide (logging a decision: one Raft apply) and PhaseDeliver (from the
	// decision's timestamp to the last shard's ack logged; the leaders' wall clocks, so
	// display-grade, skipped when they run backwards). It must not block.
	OnPhase func(phase string, d time.Duration)

	// Rho is the clock rate error tolerated: leases expire ttl·(1+Rho) after the leader
	// last saw them renewed, so no lease ends before ttl·(1−Rho) of real time.
	Rho float64
	// ExpiryScan is how often the leader looks for expired leases and old transactions.
	ExpiryScan time.Duration
	// Retention is how long a finished transaction stays queryable before it is forgotten.
	Retention time.Duration
	// MaxRetained bounds how many finished transactions are kept (0: no bound): past it
	// the oldest are forgotten before their Retention, so memory and snapshots stay
	// bounded at any rate (at 5,000 matches/s ten minutes would be 3 M records). A
	// forgotten txn's proposal id can be proposed again as a new match, so the bound is
	// also the proposers' dedupe window: keep it well above rate × their retry horizon.
	MaxRetained int
	// SnapshotFormat is the format of the snapshots this node writes (0: the newest, 2;
	// see FSM.SetSnapshotFormat): 1 during a rolling upgrade from a build that reads
	// only format 1.
	SnapshotFormat uint16
	// ResendInitial and ResendMax bound the backoff of Prepare and decision resends.
	ResendInitial, ResendMax time.Duration
	// MaxBatch is the most commands per Raft entry; ApplyTimeout bounds one Raft apply.
	MaxBatch     int
	ApplyTimeout time.Duration
	// Raft timing. Defaults suit a LAN; tests shorten them.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	SnapshotThreshold                                                    uint64
	SnapshotInterval                                                     time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so a slightly
	// lagging follower catches up from the log rather than a snapshot install.
	TrailingLogs uint64
	// MaxSnapshotBytes bounds the FSM data of a snapshot RestoreSnapshot accepts when
	// RestoreOptions.MaxBytes is zero (default DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int64
}

// TransportFactory builds a node's transport to shards once the node exists, given
// where the shards' replies must go: the node is made first, and nothing has to
// forward replies to a node that does not exist yet. An error fails New.
type TransportFactory func(replies twophase.ReplyHandler) (twophase.Transport, error)

// Default Raft timing (DefaultConfig, serve's --raft-* flags, the dev and bench
// clusters, the Helm chart). hashicorp/raft's follower checks for its leader at
// random intervals of [HeartbeatTimeout, 2×HeartbeatTimeout] and stands once it has
// heard nothing for HeartbeatTimeout; the other follower refuses its vote until it has
// timed out too. A lost leader is therefore replaced between 1× and 3× the heartbeat
// timeout after it last spoke (about 2× at the median): 300ms keeps the first commit
// through the new leader within a second at the median and 1.5s at worst (issue 13),
// with room for a follower or disk stalled on a busy machine. The leader heartbeats
// every HeartbeatTimeout/10 to /5, so a follower stands only if it hears nothing for
// five or more of them in a row.
const (
	DefaultHeartbeatTimeout = 300 * time.Millisecond
	DefaultElectionTimeout  = 300 * time.Millisecond
	// DefaultLeaderLeaseTimeout is how long a leader that hears from no quorum keeps
	// leading (at most HeartbeatTimeout): a partitioned leader steps down about then.
	DefaultLeaderLeaseTimeout = DefaultHeartbeatTimeout / 2
)

// DefaultConfig returns a Config with every tunable set; callers fill in identity,
// storage and transports.
func DefaultConfig() Config {
	return Config{
		Limits: DefaultLimits(), Rho: 0.01, ExpiryScan: 100 * time.Millisecond, Retention: 10 * time.Minute,
		MaxRetained:   DefaultMaxRetained,
		ResendInitial: 100 * time.Millisecond, ResendMax: 2 * time.Second, MaxBatch: 512, ApplyTimeout: 10 * time.Second,
		HeartbeatTimeout: DefaultHeartbeatTimeout, ElectionTimeout: DefaultElectionTimeout, LeaderLeaseTimeout: DefaultLeaderLeaseTimeout,
		CommitTimeout: 5 * time.Millisecond, SnapshotThreshold: 8192, SnapshotInterval: 30 * time.Second, TrailingLogs: 4096,
		MaxSnapshotBytes: DefaultMaxSnapshotBytes,
	}
}

// Validate reports the first missing or inconsistent field by name.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("coordinator: Config.NodeID is empty")
	case c.DataDir == "":
		return errors.New("coordinator: Config.DataDir is empty")
	case c.RaftTransport == nil:
		return errors.New("coordinator: Config.RaftTransport is nil")
	case c.Participants == nil:
		return errors.New("coordinator: Config.Participants is nil")
	case c.Clock == nil:
		return errors.New("coordinator: Config.Clock is nil")
	case c.Rho < 0 || c.Rho >= 0.5:
		return fmt.Errorf("coordinator: Config.Rho (%v) must be in [0, 0.5)", c.Rho)
	case c.ExpiryScan <= 0:
		return fmt.Errorf("coordinator: Config.ExpiryScan (%s) must be > 0", c.ExpiryScan)
	case c.MaxBatch < 1 || c.MaxBatch > MaxBatch:
		return fmt.Errorf("coordinator: Config.MaxBatch (%d) must be in [1, %d]", c.MaxBatch, MaxBatch)
	case c.MaxSnapshotBytes < 0:
		return fmt.Errorf("coordinator: Config.MaxSnapshotBytes (%d) must be >= 0", c.MaxSnapshotBytes)
	case c.ApplyTimeout <= 0:
		return fmt.Errorf("coordinator: Config.ApplyTimeout (%s) must be > 0", c.ApplyTimeout)
	case c.SnapshotFormat != 0 && !slices.Contains(SnapshotFormats, c.SnapshotFormat):
		return fmt.Errorf("coordinator: Config.SnapshotFormat %d: this build writes %v", c.SnapshotFormat, SnapshotFormats)
	case c.MaxRetained < 0:
		return fmt.Errorf("coordinator: Config.MaxRetained (%d) must be >= 0 (0: no bound)", c.MaxRetained)
	case c.Limits.MaxPlayers < 2:
		return fmt.Errorf("coordinator: Config.Limits.MaxPlayers (%d) must be >= 2", c.Limits.MaxPlayers)
	case c.Limits.DefaultPrepareTimeout <= 0 || c.Limits.MaxPrepareTimeout < c.Limits.DefaultPrepareTimeout:
		return fmt.Errorf("coordinator: Config.Limits.DefaultPrepareTimeout (%s) must be > 0 and <= MaxPrepareTimeout (%s)",
			c.Limits.DefaultPrepareTimeout, c.Limits.MaxPrepareTimeout)
	}
	if c.Bootstrap && len(c.Peers) == 0 {
		return errors.New("coordinator: Config.Bootstrap needs Config.Peers")
	}
	return nil
}
