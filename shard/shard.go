package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// Defaults for the Config fields left zero.
const (
	// DefaultCompactInterval is how often the journal drops old decided records.
	DefaultCompactInterval = time.Hour
	// DefaultRegisterTimeout bounds Start's wait for a coordinator leader to accept
	// the registration.
	DefaultRegisterTimeout = time.Minute
	// DefaultQueryTimeout bounds one outcome query of the recovery.
	DefaultQueryTimeout = 5 * time.Second
)

// ErrConfig is wrapped by every error Start returns for an invalid Config.
var ErrConfig = errors.New("shard: invalid config")

// Config configures a shard. ID, Conn, Game and one of Journal or JournalPath are
// required; everything else has a default.
type Config struct {
	// ID is the shard's id: one NATS subject token (no '.', '*', '>' or spaces).
	ID string
	// Conn is the shard's NATS connection, not closed by Stop. Configure it to
	// reconnect forever (nats.MaxReconnects(-1)): the shard resumes on its own.
	Conn *nats.Conn
	// Game is the game's player state: it reserves, commits and releases players.
	Game twophase.ShardHandler
	// JournalPath is the file the shard's votes and outcomes are kept in
	// (twophase.OpenJournal: an append-only twophase.LogJournal, or the bbolt journal
	// an earlier release made there); its directory is created if missing. Keep it on
	// durable storage: a shard that loses its journal may vote YES twice for a player.
	JournalPath string
	// Journal, if set instead of JournalPath, is used as is and not closed by Stop.
	Journal twophase.Journal
	// Region and Capacity are announced to the coordinator (ShardInfo); Capacity 0
	// means unknown.
	Region   string
	Capacity int
	// Prefix of the NATS subjects ("sm" if empty): the coordinator's --nats-prefix.
	Prefix string
	// Logger receives the shard's events. Nil discards.
	Logger *slog.Logger
	// Clock, nil for the machine's clock: tests pass a clock.Fake.
	Clock clock.Clock
	// CompactInterval is how often old decided records leave the journal
	// (DefaultCompactInterval); negative never compacts.
	CompactInterval time.Duration
	// TombstoneRetention is how long a decided record is kept
	// (twophase.DefaultTombstoneRetention).
	TombstoneRetention time.Duration
	// RegisterTimeout bounds the wait for the coordinator at Start
	// (DefaultRegisterTimeout).
	RegisterTimeout time.Duration
	// Workers is how many txids are handled at once (natstransport.DefaultWorkers).
	Workers int
	// Verifier, if set, makes signed commands mandatory (see docs/security.md).
	Verifier *cmdsig.Verifier
	// Wrap, if set, wraps the Participant before it is served: a chaos recorder or a
	// game's middleware. Recovery still reaches the Participant itself.
	Wrap func(twophase.CommandHandler) twophase.CommandHandler
	// Faults disturbs replies in chaos runs only (natstransport.Faults).
	Faults *natstransport.Faults
}

// Shard is a running shard. Stop it with Stop.
type Shard struct {
	cfg     Config
	log     *slog.Logger
	journal twophase.Journal
	ownJrnl bool
	part    *twophase.Participant
	cli     *client.Client
	srv     *natstransport.ShardServer

	stopOnce sync.Once
	stopBg   context.CancelFunc
	bgDone   chan struct{}
}

// Start opens the journal, registers the shard and serves its commands; see the
// package documentation for each step. It returns once the shard is serving, or
// with the first error (nothing is left running then).
func Start(ctx context.Context, cfg Config) (_ *Shard, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Shard{cfg: cfg, log: cfg.Logger.With("shard", cfg.ID), stopBg: func() {}, bgDone: make(chan struct{})}
	close(s.bgDone)
	defer func() {
		if err != nil {
			s.Stop(context.Background())
		}
	}()
	if s.journal = cfg.Journal; s.journal == nil {
		if dir := filepath.Dir(cfg.JournalPath); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("shard %s: journal directory: %w", cfg.ID, err)
			}
		}
		bj, err := twophase.OpenJournal(cfg.JournalPath)
		if err != nil {
			return nil, fmt.Errorf("shard %s: journal: %w", cfg.ID, err)
		}
		s.journal, s.ownJrnl = bj, true
	}
	if s.part, err = twophase.NewParticipant(twophase.ParticipantConfig{ShardID: cfg.ID, Handler: cfg.Game, Journal: s.journal,
		Clock: cfg.Clock, Logger: s.log, TombstoneRetention: cfg.TombstoneRetention}); err != nil {
		return nil, fmt.Errorf("shard %s: %w", cfg.ID, err)
	}
	if n := len(s.part.InDoubt()); n > 0 {
		s.log.Info("journal holds in-doubt transactions; asking the coordinator for their outcome", "in_doubt", n)
	}
	if s.cli, err = client.New(client.Config{Conn: cfg.Conn, Prefix: cfg.Prefix, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("shard %s: %w", cfg.ID, err)
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.RegisterTimeout)
	defer cancel()
	if err := s.register(rctx); err != nil {
		return nil, err
	}
	var h twophase.CommandHandler = s.part
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	if s.srv, err = natstransport.Serve(rctx, natstransport.ParticipantConfig{Conn: cfg.Conn, Prefix: cfg.Prefix, ShardID: cfg.ID,
		Handler: h, Recoverer: s.part, Querier: client.StatusQuerier{Client: s.cli, Timeout: DefaultQueryTimeout},
		Logger: s.log, Clock: cfg.Clock, Workers: cfg.Workers, Verifier: cfg.Verifier, Faults: cfg.Faults}); err != nil {
		return nil, fmt.Errorf("shard %s: serve commands: %w", cfg.ID, err)
	}
	s.startCompaction()
	return s, nil
}

func (c *Config) setDefaults() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.ID == "":
		return bad("ID is empty")
	case c.Conn == nil:
		return bad("Conn is nil")
	case c.Game == nil:
		return bad("Game is nil")
	case c.Journal == nil && c.JournalPath == "":
		return bad("neither Journal nor JournalPath is set")
	case c.Journal != nil && c.JournalPath != "":
		return bad("both Journal and JournalPath are set")
	case natsutil.ValidateShardID(c.ID) != nil:
		return bad("ID: %v", natsutil.ValidateShardID(c.ID))
	case c.Capacity < 0 || c.RegisterTimeout < 0 || c.TombstoneRetention < 0 || c.Workers < 0:
		return bad("Capacity, RegisterTimeout, TombstoneRetention and Workers must be >= 0")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = DefaultCompactInterval
	}
	if c.RegisterTimeout == 0 {
		c.RegisterTimeout = DefaultRegisterTimeout
	}
	return nil
}

// ProtocolVersion is the shard protocol version this SDK speaks (ShardInfo).
const ProtocolVersion = 1

// register announces the shard until a leader accepts it, backing off from 200 ms to
// 3 s between attempts.
func (s *Shard) register(ctx context.Context) error {
	// The SDK's command server takes ShardCommandBatch messages, so say so: the
	// coordinator then sends several commands per message under load.
	info := &smv1.ShardInfo{ShardId: s.cfg.ID, Region: s.cfg.Region, Capacity: int32(s.cfg.Capacity),
		ProtocolVersion: ProtocolVersion, CommandBatches: true}
	wait := 200 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, DefaultQueryTimeout)
		err := s.cli.RegisterShard(actx, info)
		cancel()
		if err == nil {
			s.log.Info("registered with the coordinator")
			return nil
		}
		s.log.Warn("registration failed; retrying", "err", err)
		if clock.Sleep(ctx, s.cfg.Clock, wait) != nil {
			return fmt.Errorf("shard %s: register: %w (last error: %w)", s.cfg.ID, ctx.Err(), err)
		}
		wait = min(2*wait, 3*time.Second)
	}
}

// startCompaction drops old decided records every CompactInterval until Stop.
func (s *Shard) startCompaction() {
	if s.cfg.CompactInterval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBg, s.bgDone = cancel, make(chan struct{})
	go func() {
		defer close(s.bgDone)
		t := s.cfg.Clock.NewTicker(s.cfg.CompactInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				if n, err := s.part.Compact(); err != nil {
					s.log.Warn("journal compaction failed", "err", err)
				} else if n > 0 {
					s.log.Debug("journal compacted", "records", n)
				}
			}
		}
	}()
}

// Participant is the shard's protocol state: its counters (Stats), the txids in
// doubt, and Fence for the game's own writes made on behalf of a match.
func (s *Shard) Participant() *twophase.Participant { return s.part }

// Client is the shard's coordinator client (on Conn): a shard that also proposes
// matches, renews or releases them uses it.
func (s *Shard) Client() *client.Client { return s.cli }

// Journal is the shard's journal (read it for an admin view; do not close it).
func (s *Shard) Journal() twophase.Journal { return s.journal }

// Stats are the command server's counters.
func (s *Shard) Stats() natstransport.ShardServerStats { return s.srv.Stats() }

// Done is closed if the command server stops on its own (its consumer was deleted).
func (s *Shard) Done() <-chan struct{} { return s.srv.Done() }

// Stop finishes the commands already delivered (until ctx ends), stops serving and
// closes the journal if Start opened it. It is safe to call more than once.
func (s *Shard) Stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		s.stopBg()
		<-s.bgDone
		if s.srv != nil {
			if err := s.srv.Drain(ctx); err != nil {
				s.log.Warn("drain", "err", err)
			}
			_ = s.srv.Close()
		}
		if s.cli != nil {
			_ = s.cli.Close()
		}
		if s.ownJrnl {
			if err := s.journal.Close(); err != nil {
				s.log.Warn("journal close", "err", err)
			}
		}
	})
}
