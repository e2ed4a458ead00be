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

	"github.com/shardmatch/shardmatch/internal/clock"
)

// Defaults for the zero values of Config.
const (
	DefaultReadTimeout   = 5 * time.Second
	DefaultChangeTimeout = 10 * time.Second
	DefaultMaxApplyLag   = 64
	DefaultListLimit     = 1000
	maxBodyBytes         = 64 << 10
)

// Config configures a Server.
type Config struct {
	// Node is the replica served. Required.
	Node Node
	// Logger receives operator actions and server-side failures (default: discarded).
	Logger *slog.Logger
	// AuthToken is the bearer token mutating calls must present. Empty refuses every
	// mutating call with 403 unless AllowUnauthenticated is set.
	AuthToken string
	// AllowUnauthenticated lets mutating calls through without a token when AuthToken is
	// empty. Development only (`coordinator dev`).
	AllowUnauthenticated bool
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
	// MaxApplyLag is how many committed entries the FSM may trail by and still be ready
	// (default DefaultMaxApplyLag).
	MaxApplyLag uint64
	// ListLimit caps /v1/txns when the caller gives no limit (default DefaultListLimit).
	ListLimit int
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
	tokenSum  [sha256.Size]byte
	started   time.Time
	startMono time.Duration
	handler   http.Handler
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
	if cfg.ListLimit <= 0 {
		cfg.ListLimit = DefaultListLimit
	}
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(MetricsConfig{Registry: cfg.Registry, NodeID: cfg.Node.ID()}); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "admin", "node", cfg.Node.ID()), node: cfg.Node,
		raft: r, state: st, metrics: m, tokenSum: sha256.Sum256([]byte(cfg.AuthToken)),
		started: cfg.Clock.Now(), startMono: cfg.Clock.Mono()}
	s.collector = newNodeCollector(s, m.nodeLabel)
	if err := m.reg.Register(s.collector); err != nil {
		return nil, fmt.Errorf("admin: register node collector: %w", err)
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
func (s *Server) Close() { s.metrics.reg.Unregister(s.collector) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: promLogger{s.log}, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /v1/status", s.getStatus)
	mux.HandleFunc("GET /v1/txns", s.listTxns)
	mux.HandleFunc("GET /v1/txns/{id}", s.getTxn)
	mux.HandleFunc("GET /v1/leases/{player}", s.getLease)
	mux.HandleFunc("GET /v1/shards", s.listShards)
	mux.HandleFunc("POST /v1/txns/{id}/abort", s.mutating(s.forceAbort))
	mux.HandleFunc("POST /v1/leader/transfer", s.mutating(s.transferLeader))
	mux.HandleFunc("POST /v1/voters", s.mutating(s.addVoter))
	mux.HandleFunc("DELETE /v1/voters/{id}", s.mutating(s.removeVoter))
	mux.HandleFunc("GET "+PathDebugState, s.debugState)
	s.registerSnapshot(mux)
	if s.cfg.Faults != nil {
		(&faultAPI{cfg: *s.cfg.Faults, log: s.log, auth: s.faultAuth}).register(mux)
	}
	return s.recoverPanics(jsonFallbacks(mux))
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

// mutating guards an operator action with the bearer token.
func (s *Server) mutating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := s.authorize(r); e != nil {
			s.log.Warn("admin call refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "code", e.Code)
			writeError(w, e)
			return
		}
		s.log.Info("admin call", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		h(w, r)
	}
}

func (s *Server) authorize(r *http.Request) *Error {
	if s.cfg.AuthToken == "" {
		if s.cfg.AllowUnauthenticated {
			return nil
		}
		return &Error{Code: CodeForbidden, Message: "mutating admin calls are disabled on this node: " +
			"no admin token is configured (set one to enable them)"}
	}
	return checkBearer(r, s.tokenSum)
}

// faultAuth guards the fault-injection endpoints: the admin token when one is
// configured, else nothing (fault injection was enabled on purpose).
func (s *Server) faultAuth(r *http.Request) *Error {
	if s.cfg.AuthToken == "" {
		return nil
	}
	return checkBearer(r, s.tokenSum)
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

// decodeBody reads one JSON object into v. An empty body is an error unless
// allowEmpty. Unknown fields and trailing data are errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *Error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return invalid("body", "request body exceeds %d bytes", tooBig.Limit)
		}
		return invalid("body", "cannot read the request body: %v", err)
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
