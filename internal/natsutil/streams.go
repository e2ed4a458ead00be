package natsutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream defaults, used where StreamConfig leaves a field zero.
const (
	// DefaultDedupeWindow is how long JetStream remembers a Nats-Msg-Id. Within it a
	// republished command (same txid/phase/shard) is stored once.
	DefaultDedupeWindow = 2 * time.Minute
	// DefaultMaxAge bounds how long a message stays in a stream. A command older than
	// this is useless anyway: the leader resends from its log.
	DefaultMaxAge = 24 * time.Hour
	// DefaultMaxMsgSize bounds one message (a proposal with its players, or a command).
	DefaultMaxMsgSize = 1 << 20
)

// StreamConfig is the shape of the three streams. Zero fields take the defaults.
type StreamConfig struct {
	// Prefix of the subjects (DefaultPrefix if empty); it also names the streams, see
	// Subjects.Streams.
	Prefix string
	// Replicas per stream: 1 on a single server, 3 on a cluster.
	Replicas int
	// Storage is jetstream.FileStorage (the zero value) or MemoryStorage (tests only:
	// a restart loses everything). It cannot change once a stream exists.
	Storage jetstream.StorageType
	// DedupeWindow is the Nats-Msg-Id duplicate window (DefaultDedupeWindow).
	DedupeWindow time.Duration
	// MaxAge drops messages older than this (DefaultMaxAge).
	MaxAge time.Duration
	// MaxMsgSize rejects larger messages (DefaultMaxMsgSize).
	MaxMsgSize int32
	// MaxBytes and MaxMsgs cap each stream; 0 means unlimited (MaxAge still bounds
	// it). When full, the oldest messages are discarded: a discarded command is
	// resent by the leader, a discarded proposal is retried by its proposer.
	MaxBytes, MaxMsgs int64
}

// StreamConfigs returns the three stream configurations EnsureStreams applies: SM_REQ
// on <p>.v1.req.propose and <p>.v1.req.propose.* (each proposer's own), SM_CMD on
// <p>.v1.shard.*.cmd and SM_EVENTS on <p>.v1.events.>.
func StreamConfigs(c StreamConfig) ([]jetstream.StreamConfig, error) {
	subj, err := NewSubjects(c.Prefix)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return nil, fmt.Errorf("natsutil: StreamConfig.Replicas (%d) must be in [0, 5]", c.Replicas)
	case c.Storage != jetstream.FileStorage && c.Storage != jetstream.MemoryStorage:
		return nil, fmt.Errorf("natsutil: StreamConfig.Storage (%d) is neither file nor memory", c.Storage)
	case c.DedupeWindow < 0 || c.MaxAge < 0 || c.MaxMsgSize < 0 || c.MaxBytes < 0 || c.MaxMsgs < 0:
		return nil, fmt.Errorf("natsutil: StreamConfig limits must be >= 0: %+v", c)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DedupeWindow > c.MaxAge {
		return nil, fmt.Errorf("natsutil: StreamConfig.DedupeWindow (%s) must be <= MaxAge (%s)", c.DedupeWindow, c.MaxAge)
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	unlimited := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	names := subj.Streams()
	mk := func(name, desc string, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			// Limits, not WorkQueue or Interest: a command must wait for a shard whose
			// consumer does not exist yet, and operators may attach extra consumers.
			Retention:  jetstream.LimitsPolicy,
			Discard:    jetstream.DiscardOld,
			Storage:    c.Storage,
			Replicas:   c.Replicas,
			Duplicates: c.DedupeWindow,
			MaxAge:     c.MaxAge,
			MaxMsgSize: c.MaxMsgSize,
			MaxBytes:   unlimited(c.MaxBytes),
			MaxMsgs:    unlimited(c.MaxMsgs),
			// Per-subject and consumer counts stay unlimited: one subject per shard.
			MaxMsgsPerSubject: -1,
			MaxConsumers:      -1,
		}
	}
	return []jetstream.StreamConfig{
		mk(names.Req, "shardmatch proposals awaiting the leader", subj.Propose(), subj.ProposeAny()),
		mk(names.Cmd, "shardmatch prepare/commit/abort commands per shard", subj.ShardCmdAll()),
		mk(names.Events, "shardmatch decided matches for downstream consumers", subj.EventsAll()),
	}, nil
}

// EnsureStreams creates the three streams, or updates them to c if they exist. It is
// idempotent and safe to call from every coordinator at start; changed limits are
// applied in place. What JetStream cannot change in place (storage type, retention, a
// replica count a single server cannot hold) fails with the stream named.
//
// JetStream that is not ready yet is waited for until ctx ends: no JetStream
// responder, a request timing out, a cluster whose meta group has no leader yet, or
// fewer servers than replicas (a cluster's servers and its coordinators start together
// in Kubernetes). The error then names what was last seen.
func EnsureStreams(ctx context.Context, js jetstream.StreamManager, c StreamConfig) error {
	cfgs, err := StreamConfigs(c)
	if err != nil {
		return err
	}
	for _, sc := range cfgs {
		if err := ensureStream(ctx, js, sc); err != nil {
			return fmt.Errorf("natsutil: ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// ensureAttemptTimeout bounds one create-or-update request of EnsureStreams.
const ensureAttemptTimeout = 5 * time.Second

// ensureStream creates or updates one stream, retrying while JetStream is not ready.
func ensureStream(ctx context.Context, js jetstream.StreamManager, sc jetstream.StreamConfig) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
		_, err := js.CreateOrUpdateStream(actx, sc)
		cancel()
		if err == nil || !notReady(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream not ready: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Error codes of a JetStream that is not ready yet (nats-server's errors.json).
const (
	jsClusterNotAvail      = 10008 // JetStream system temporarily unavailable: no meta leader
	jsClusterNoPeers       = 10005 // no suitable peers for placement: servers still joining
	jsClusterNotLeader     = 10009 // JetStream cluster can not handle request
	jsInsufficientResource = 10023 // insufficient resources: servers still joining
	// error creating store for stream: seen when three coordinators started within
	// milliseconds of each other and of a fresh NATS server (a secured chaos run, 2 runs
	// in 4 in one CI run): one of them got it while the others made the streams. The
	// server serialises creates of one name, so the cause is not a plain create race;
	// retrying fixes it. A store that truly cannot be made fails the same way until ctx
	// ends, and the error says so.
	jsStreamCreateFailed = 10049
)

// notReady reports whether err is one JetStream returns while it is starting, or
// while another client creates the same stream, which retrying fixes.
func notReady(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsClusterNotAvail, jsClusterNoPeers, jsClusterNotLeader, jsInsufficientResource,
			jsStreamCreateFailed, jetstream.JSErrCodeJetStreamNotEnabled:
			return true
		}
		return apiErr.Code == 503
	}
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}
