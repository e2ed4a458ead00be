package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// Defaults of LeaderIndexClientConfig.
const (
	// DefaultLeaderIndexTimeout bounds one leader-index request.
	DefaultLeaderIndexTimeout = time.Second
	// DefaultLeaderIndexMaxAge is how long an answer (or a failure) is reused.
	DefaultLeaderIndexMaxAge = time.Second
)

// LeaderIndexSubject is where a follower asks the leader for its commit index:
// <p>.v1.leader.index, a core request with an empty body that only the leading node's
// Server answers (subscribed while it leads, after it has taken over), with a
// LeaderIndex as JSON. Coordinators are its only users.
func LeaderIndexSubject(s natsutil.Subjects) string { return s.Prefix() + ".v1.leader.index" }

// LeaderIndex is the leader's answer: its node id, term, Raft commit index and admin
// API base URL ("" when the leader advertises none).
type LeaderIndex struct {
	NodeID      string `json:"node_id"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	AdminURL    string `json:"admin_url,omitempty"`
}

// handleLeaderIndex answers a leader-index request from term t. It runs on the
// subscription's goroutine: it only reads an atomic index and publishes.
func (s *Server) handleLeaderIndex(t *term, m *nats.Msg) {
	if m.Reply == "" {
		s.stats.noReply.Add(1)
		return
	}
	if t.ctx.Err() != nil {
		return // the term ended: let the next leader answer
	}
	b, err := json.Marshal(LeaderIndex{NodeID: s.cfg.NodeID, Term: t.n, CommitIndex: s.cfg.CommitIndex(), AdminURL: s.cfg.AdminURL})
	if err != nil {
		s.stats.replyErrors.Add(1)
		return
	}
	if err := m.Respond(b); err != nil {
		s.stats.replyErrors.Add(1)
		return
	}
	s.stats.replies.Add(1)
}

// ErrNoLeaderIndex is wrapped by a LeaderIndexClient's failures: no node answered
// (none leads, or the leader has not finished taking over), the answer was late, or
// it could not be read.
var ErrNoLeaderIndex = errors.New("natsapi: no leader index")

// LeaderIndexClientConfig configures a LeaderIndexClient. Conn is required.
type LeaderIndexClientConfig struct {
	// Conn is the node's NATS connection; the client does not close it.
	Conn *nats.Conn
	// Prefix of the subjects (natsutil.DefaultPrefix if empty).
	Prefix string
	// Timeout bounds one request (DefaultLeaderIndexTimeout).
	Timeout time.Duration
	// MaxAge is how long an answer or a failure is reused (DefaultLeaderIndexMaxAge).
	MaxAge time.Duration
	// Clock measures MaxAge (nil: the machine's clock).
	Clock clock.Clock
}

// LeaderIndexClient asks the leader for its commit index over NATS, for a follower's
// readiness. At most one request is in flight; its answer, or its failure, is reused
// for MaxAge, so probes and scrapes cost the leader one small request a second at
// most. A reused answer is at most MaxAge old, so it can only understate the leader's
// commit index by what it committed since.
type LeaderIndexClient struct {
	cfg     LeaderIndexClientConfig
	subject string

	mu   sync.Mutex // held across the request: callers queue behind the one in flight
	last LeaderIndex
	err  error
	at   time.Duration // clock.Mono() of the last request
	has  bool          // a request was made
}

// NewLeaderIndexClient validates cfg and returns a client.
func NewLeaderIndexClient(cfg LeaderIndexClientConfig) (*LeaderIndexClient, error) {
	if cfg.Conn == nil {
		return nil, errors.New("natsapi: LeaderIndexClientConfig.Conn is nil")
	}
	if cfg.Timeout < 0 || cfg.MaxAge < 0 {
		return nil, errors.New("natsapi: LeaderIndexClientConfig durations must be >= 0")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultLeaderIndexTimeout
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultLeaderIndexMaxAge
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	subj, err := natsutil.NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	return &LeaderIndexClient{cfg: cfg, subject: LeaderIndexSubject(subj)}, nil
}

// LeaderIndex returns the leader's answer, reused if younger than MaxAge. It fails
// with an error wrapping ErrNoLeaderIndex when no leader answered within Timeout (or
// ctx ended first).
func (c *LeaderIndexClient) LeaderIndex(ctx context.Context) (LeaderIndex, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has && c.cfg.Clock.Mono()-c.at < c.cfg.MaxAge {
		return c.last, c.err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	c.last, c.err = c.request(ctx)
	c.at, c.has = c.cfg.Clock.Mono(), true
	return c.last, c.err
}

func (c *LeaderIndexClient) request(ctx context.Context) (LeaderIndex, error) {
	m, err := c.cfg.Conn.RequestWithContext(ctx, c.subject, nil)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return LeaderIndex{}, fmt.Errorf("%w: no leader answers %s", ErrNoLeaderIndex, c.subject)
		}
		return LeaderIndex{}, fmt.Errorf("%w: %s: %v", ErrNoLeaderIndex, c.subject, err)
	}
	var li LeaderIndex
	if err := json.Unmarshal(m.Data, &li); err != nil || li.NodeID == "" {
		return LeaderIndex{}, fmt.Errorf("%w: unreadable answer on %s (%d bytes)", ErrNoLeaderIndex, c.subject, len(m.Data))
	}
	return li, nil
}
