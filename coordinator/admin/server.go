package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
)

// Defaults for the zero values of Config.
const (
	DefaultReadTimeout   = 5 * time.Second
	DefaultChangeTimeout = 10 * time.Second
	DefaultMaxApplyLag   = 64
	DefaultListLimit     = 1000
)

// PathSnapshotRestore is the snapshot upload, the one body the body limit exempts (the
// node bounds a snapshot's size itself).
const PathSnapshotRestore = "/v1/snapshot/restore"

// Config configures a Server.
type Config struct {
	// Node is the replica served. Required.
	Node Node
	// Logger receives operator actions and server-side failures (default: discarded).
	Logger *slog.Logger
	// AuthToken is the operate role's bearer token: operator actions (and reads) must
	// present it. A comma-separated list accepts each, so a token can be rotated without
	// downtime. Empty refuses every operator action with 403 unless
	// AllowUnauthenticated is set or the client presents a certificate verified against
	// the admin client CA (ServerTLSConfig.ClientCAFile).
	AuthToken string
	// ReadToken is the read role's bearer token (comma-separated list too): every GET
	// under /v1/ except the snapshot download needs it or an operate credential. Empty:
	// those GETs are open, as before roles existed. /healthz, /readyz and /metrics are
	// always open.
	ReadToken string
	// AllowUnauthenticated lets operator actions through without a token when AuthToken
	// is empty. Development only (`coordinator dev`).
	AllowUnauthenticated bool
	// Audit receives a record of every call to an operate endpoint, allowed or refused
	// (nil: New makes one that only logs and keeps the latest records in memory). The
	// caller owns it and closes it after the Server.
	Audit *Auditor
	// MaxBodyBytes bounds a request body (default DefaultMaxBodyBytes); a bigger one is
	// answered 413 TOO_LARGE and changes nothing. The snapshot upload is exempt.
	MaxBodyBytes int64
	// Metrics is the node's metrics, made by NewMetrics before the node so that
	// coordinator.Config.OnDecided can feed it. Nil: New makes one on Registry.
	Metrics *Metrics
	// Registry is where a Metrics made by New registers (nil: a new registry with the Go
	// and process collectors). Ignored when Metrics is set.
	Registry *prometheus.Registry
	// Clock measures uptime (default: the machine's clock).
	Clock clock.Clock
	// ReadTimeout bounds a linearizable read; ChangeTimeout a membership change.
	ReadTimeout, ChangeTimeout time.Duration
	// MaxApplyLag is how many entries this node's applied index may trail the leader's
	// commit index by and still be ready (default DefaultMaxApplyLag).
	MaxApplyLag uint64
	// LeaderIndex tells a follower the leader's commit index, which /readyz measures
	// its lag against (`coordinator serve` asks the leader over NATS:
	// natsapi.LeaderIndexClient). Nil: a follower measures against its own commit
	// index, which a restarted follower wrongly reports caught up; in-process use only.
	LeaderIndex LeaderIndexSource
	// LeaderIndexTimeout bounds one LeaderIndex call (DefaultLeaderIndexTimeout).
	LeaderIndexTimeout time.Duration
	// ListLimit caps /v1/txns when the caller gives no limit (default DefaultListLimit).
	ListLimit int
	// AdvertiseURL is this node's admin API base URL as clients reach it (e.g.
	// http://10.0.0.3:8080; serve --admin-advertise-url). A follower's NOT_LEADER names
	// the leader's (leader_admin_url), learnt from LeaderIndex, so that clients can
	// follow it.
	AdvertiseURL string
	// PrepareTimeout is the coordinator's prepare timeout for proposals that give none
	// (coordinator.Limits.DefaultPrepareTimeout, the default when zero): a PREPARING txn
	// past its Begin time plus its timeout is stuck.
	PrepareTimeout time.Duration
	// Faults, if set, serves the fault-injection endpoints (fault.go). Only for
	// processes started with --enable-fault-injection; nil leaves them 404.
	Faults *FaultConfig
}

// Server is one node's admin HTTP API. It starts no goroutines: serve Handler with
// any http.Server, and Close it when the node stops.
type Server struct {
	cfg       Config
	log       *slog.Logger
	node      Node
	raft      raftAPI
	state     stateAPI
	metrics   *Metrics
	collector *nodeCollector
	// operateTokens and readTokens are the digests of the accepted tokens per role.
	operateTokens, readTokens tokenSet
	audit                     *Auditor
	ownAudit                  bool
	auditFailures             prometheus.Collector
	started                   time.Time
	startMono                 time.Duration
	handler                   http.Handler
}

// New returns a Server for cfg.Node and registers the node's scrape-time gauges.
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("admin: Config.Node is nil")
	}
	r, st := cfg.Node.Raft(), cfg.Node.FSM()
	if r == nil || st == nil {
		return nil, errors.New("admin: Config.Node has no Raft or FSM (not started?)")
	}
	return newServer(cfg, r, st)
}

// newServer builds a Server on explicit Raft and FSM views, which unit tests fake.
func newServer(cfg Config, r raftAPI, st stateAPI) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.ChangeTimeout <= 0 {
		cfg.ChangeTimeout = DefaultChangeTimeout
	}
	if cfg.MaxApplyLag == 0 {
		cfg.MaxApplyLag = DefaultMaxApplyLag
	}
	if cfg.LeaderIndexTimeout <= 0 {
		cfg.LeaderIndexTimeout = DefaultLeaderIndexTimeout
	}
	if cfg.ListLimit <= 0 {
		cfg.ListLimit = DefaultListLimit
	}
	if cfg.PrepareTimeout <= 0 {
		cfg.PrepareTimeout = coordinator.DefaultLimits().DefaultPrepareTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(MetricsConfig{Registry: cfg.Registry, NodeID: cfg.Node.ID()}); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "admin", "node", cfg.Node.ID()), node: cfg.Node,
		raft: r, state: st, metrics: m, operateTokens: parseTokens(cfg.AuthToken), readTokens: parseTokens(cfg.ReadToken),
		audit: cfg.Audit, started: cfg.Clock.Now(), startMono: cfg.Clock.Mono()}
	if s.audit == nil {
		s.audit, _ = NewAuditor(AuditConfig{Logger: cfg.Logger}) // no file, no publisher: cannot fail
		s.ownAudit = true
	}
	s.collector = newNodeCollector(s, m.nodeLabel)
	if err := m.reg.Register(s.collector); err != nil {
		return nil, fmt.Errorf("admin: register node collector: %w", err)
	}
	s.auditFailures = newAuditCollector(s.audit, m.nodeLabel)
	if err := m.reg.Register(s.auditFailures); err != nil {
		m.reg.Unregister(s.collector)
		return nil, fmt.Errorf("admin: register audit counters: %w", err)
	}
	if cfg.Faults != nil {
		if err := cfg.Faults.validate(); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the admin API.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics is the server's metrics, for the composition root to feed.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close unregisters the node's scrape-time gauges, so a restarted node's new Server can
// register on the same registry. The handler keeps answering from the old node.
func (s *Server) Close() {
	s.metrics.reg.Unregister(s.collector)
	s.metrics.reg.Unregister(s.auditFailures)
	if s.ownAudit {
		_ = s.audit.Close()
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, s.healthz)
	mux.HandleFunc("GET "+PathReadyz, s.readyz)
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: promLogger{s.log}, ErrorHandling: promhttp.ContinueOnError}))
	// Reads: the read role (open when no read token is configured).
	mux.HandleFunc("GET "+PathStatus, s.read(s.getStatus))
	mux.HandleFunc("GET "+PathTxns, s.read(s.listTxns))
	mux.HandleFunc("GET "+PathTxn, s.read(s.getTxn))
	mux.HandleFunc("GET "+PathDeadLetters, s.read(s.listDeadLetters))
	mux.HandleFunc("GET "+PathLease, s.read(s.getLease))
	mux.HandleFunc("GET "+PathShards, s.read(s.listShards))
	mux.HandleFunc("GET "+PathStats, s.read(s.getStats))
	mux.HandleFunc("GET "+PathPolicy, s.read(s.getPolicy))
	mux.HandleFunc("GET "+PathDebugState, s.read(s.debugState))
	mux.HandleFunc("GET "+PathAudit, s.read(s.getAudit))
	// Operator actions: the operate role, audited.
	mux.HandleFunc("POST "+PathTxnAbort, s.operate(s.forceAbort, false))
	mux.HandleFunc("POST "+PathTxnRedrive, s.operate(s.redrive, false))
	mux.HandleFunc("POST "+PathTxnResolve, s.operate(s.resolve, false))
	mux.HandleFunc("POST "+PathShardState, s.operate(s.setShardState, false))
	mux.HandleFunc("POST "+PathLeaderTransfer, s.operate(s.transferLeader, false))
	mux.HandleFunc("POST "+PathVoters, s.operate(s.addVoter, false))
	mux.HandleFunc("DELETE "+PathVoter, s.operate(s.removeVoter, false))
	s.registerSnapshot(mux)
	s.mountUI(mux)
	if s.cfg.Faults != nil {
		// Without an operate token the fault endpoints are open: the operator who
		// enabled fault injection asked for them.
		f := &faultAPI{cfg: *s.cfg.Faults, log: s.log, auth: func(*http.Request) *Error { return nil }}
		mux.HandleFunc("GET "+PathFault, s.read(f.get))
		mux.HandleFunc("POST "+PathFaultClock, s.operate(f.setClock, true))
		mux.HandleFunc("POST "+PathFaultTransport, s.operate(f.setTransport, true))
	}
	return s.recoverPanics(s.limitBody(jsonFallbacks(mux)))
}

// jsonFallbacks answers what the mux cannot route (404, 405) in the API's JSON form.
func jsonFallbacks(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &capture{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusNotFound:
			writeError(w, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, &Error{Code: CodeMethodNotAllowed,
				Message: fmt.Sprintf("%s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow"))})
		default: // redirects for unclean paths: pass through
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

// capture records a response the mux writes for an unrouted request.
type capture struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *capture) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// recoverPanics turns a handler panic into a 500 instead of a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("admin handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, &Error{Code: CodeInternal, Message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// checkBearer checks r's bearer token against the digest of the configured one.
func checkBearer(r *http.Request, want [sha256.Size]byte) *Error {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return &Error{Code: CodeUnauthenticated, Message: "this call needs an `Authorization: Bearer <token>` header"}
	}
	// Compare digests: constant time, and no length leak.
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
		return &Error{Code: CodeUnauthenticated, Message: "the bearer token is not valid"}
	}
	return nil
}

// decodeBody reads one JSON object into v (the body is bounded by the caller:
// Server.limitBody, NewFaultHandler). An empty body is an error unless
// allowEmpty. Unknown fields and trailing data are errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *Error {
	body, err := io.ReadAll(r.Body) // bounded by limitBody (413 over it)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return invalid("body", "request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("body", "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("body", "malformed JSON body: unexpected data after the object")
	}
	return nil
}

// readCtx bounds a call by the request and d.
func readCtx(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}

// promLogger adapts slog to promhttp's error log.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics exposition", "err", fmt.Sprint(v...)) }
