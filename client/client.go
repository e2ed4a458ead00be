package client

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// HeaderReply carries the proposer's reply inbox on a published proposal (JetStream
// answers the publish's own reply subject with its PubAck).
const HeaderReply = "Sm-Reply"

// Defaults, used where Config leaves a field zero.
const (
	// DefaultAttemptTimeout is how long Propose waits for an answer before it asks
	// Status what became of its proposal.
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultStatusTimeout bounds one request-reply attempt (status, lease, register).
	DefaultStatusTimeout = 2 * time.Second
	// DefaultRetryBackoff and DefaultRetryBackoffMax bound the wait between attempts
	// while no leader answers.
	DefaultRetryBackoff    = 25 * time.Millisecond
	DefaultRetryBackoffMax = time.Second
)

// Config configures a Client. Conn is required.
type Config struct {
	// Conn is the NATS connection; the Client does not close it. Configure it to
	// reconnect forever (nats.MaxReconnects(-1)) so that calls survive NATS restarts.
	Conn *nats.Conn
	// JetStream publishes proposals to the intake stream (nil: jetstream.New(Conn)).
	JetStream jetstream.JetStream
	// Prefix of the subjects ("sm" if empty).
	Prefix string
	// Logger receives retries at debug level. Nil discards.
	Logger *slog.Logger
	// AttemptTimeout is how long Propose waits for an answer before asking Status
	// (DefaultAttemptTimeout). It is also how long one publish may take.
	AttemptTimeout time.Duration
	// StatusTimeout bounds one request-reply attempt (DefaultStatusTimeout).
	StatusTimeout time.Duration
	// RetryBackoff, doubled up to RetryBackoffMax, spaces attempts while no leader
	// answers (DefaultRetryBackoff, DefaultRetryBackoffMax).
	RetryBackoff, RetryBackoffMax time.Duration
	// Identity is the proposer identity: the NATS user name of the connection's
	// credentials, e.g. "proposer-mm1". With one, proposals are published on that
	// proposer's own intake subject, <p>.v1.req.propose.<Identity>, which NATS
	// permissions let only that user publish to (and the coordinator rate-limits by);
	// without, on the anonymous <p>.v1.req.propose. Empty: taken from the connection's
	// inbox prefix when it is _INBOX.<name> (what internal/config sets for a
	// connection made with credentials), else none. "-" forces none.
	Identity string
}

// Client talks to the coordinator leader over NATS. It is safe for concurrent use.
// Close it before closing its connection.
type Client struct {
	cfg       Config
	log       *slog.Logger
	subj      natsutil.Subjects
	intake    string // the intake subject
	leaseSubj string
	reqStream string
	js        jetstream.JetStream
	mux       *inboxMux
}

// New validates cfg and subscribes the client's reply inbox.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("client: Config.Conn is nil")
	case cfg.AttemptTimeout < 0, cfg.StatusTimeout < 0, cfg.RetryBackoff < 0, cfg.RetryBackoffMax < 0:
		return nil, errors.New("client: Config durations must be >= 0")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.AttemptTimeout, DefaultAttemptTimeout)
	def(&cfg.StatusTimeout, DefaultStatusTimeout)
	def(&cfg.RetryBackoff, DefaultRetryBackoff)
	def(&cfg.RetryBackoffMax, DefaultRetryBackoffMax)
	cfg.RetryBackoffMax = max(cfg.RetryBackoffMax, cfg.RetryBackoff)
	subj, err := natsutil.NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("client: Config.Prefix: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: lg.With("component", "shardmatch.client"), subj: subj,
		leaseSubj: subj.Prefix() + ".v1.lease", reqStream: subj.Streams().Req, js: cfg.JetStream}
	if c.cfg.Identity, c.intake, err = proposeSubject(subj, cfg.Identity, cfg.Conn.Opts.InboxPrefix); err != nil {
		return nil, err
	}
	if c.js == nil {
		if c.js, err = jetstream.New(cfg.Conn); err != nil {
			return nil, fmt.Errorf("client: jetstream: %w", err)
		}
	}
	if c.mux, err = newInboxMux(cfg.Conn, cfg.StatusTimeout); err != nil {
		return nil, err
	}
	return c, nil
}

// proposeSubject resolves Config.Identity (see there) into the identity and the
// intake subject.
func proposeSubject(subj natsutil.Subjects, identity, inboxPrefix string) (string, string, error) {
	switch identity {
	case "-":
		return "", subj.Propose(), nil
	case "":
		name, ok := strings.CutPrefix(inboxPrefix, natsutil.InboxRoot+".")
		if !ok || name == "" {
			return "", subj.Propose(), nil
		}
		if s, err := subj.ProposeFrom(name); err == nil {
			return name, s, nil
		}
		return "", subj.Propose(), nil // a custom prefix of more than one token: no identity
	}
	s, err := subj.ProposeFrom(identity)
	if err != nil {
		return "", "", fmt.Errorf("client: Config.Identity: %w", err)
	}
	return identity, s, nil
}

// Identity returns the proposer identity the client proposes as ("" for none); see
// Config.Identity.
func (c *Client) Identity() string { return c.cfg.Identity }

// Close unsubscribes the reply inbox; calls in progress end with ErrOutcomeUnknown
// (Propose) or fail. The connection stays open.
func (c *Client) Close() error { return c.mux.close() }

// inboxMux is one wildcard subscription, <inbox>.*, shared by every Propose in flight:
// each call gets a fresh subject under it, registered before its first publish.
type inboxMux struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	closed  bool
	waiters map[string]chan *nats.Msg
}

func newInboxMux(nc *nats.Conn, flushTimeout time.Duration) (*inboxMux, error) {
	m := &inboxMux{prefix: nc.NewInbox() + ".", waiters: make(map[string]chan *nats.Msg)}
	sub, err := nc.Subscribe(m.prefix+"*", m.deliver)
	if err != nil {
		return nil, fmt.Errorf("client: subscribe reply inbox: %w", err)
	}
	// Once the flush returns the server knows the subscription, so no answer to the
	// first proposal can miss it.
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("client: flush reply inbox subscription: %w", err)
	}
	m.sub = sub
	return m, nil
}

// open registers a fresh reply subject. Its channel is closed when the mux closes.
func (m *inboxMux) open() (subject string, replies <-chan *nats.Msg, release func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", nil, nil, ErrClosed
	}
	m.next++
	tok := strconv.FormatUint(m.next, 36)
	ch := make(chan *nats.Msg, 8)
	m.waiters[tok] = ch
	return m.prefix + tok, ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.waiters, tok)
	}, nil
}

// deliver routes an answer to its call; extra copies (redeliveries answered twice) are
// dropped when the call's buffer is full.
func (m *inboxMux) deliver(msg *nats.Msg) {
	tok, ok := strings.CutPrefix(msg.Subject, m.prefix)
	if !ok {
		return
	}
	m.mu.Lock()
	ch := m.waiters[tok]
	if ch != nil {
		select {
		case ch <- msg:
		default:
		}
	}
	m.mu.Unlock()
}

func (m *inboxMux) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for tok, ch := range m.waiters {
		close(ch)
		delete(m.waiters, tok)
	}
	if err := m.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("client: unsubscribe reply inbox: %w", err)
	}
	return nil
}
