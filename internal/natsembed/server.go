package natsembed

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultReadyTimeout bounds how long StartEmbedded waits for the server to accept
// connections when EmbeddedConfig.ReadyTimeout is zero.
const DefaultReadyTimeout = 10 * time.Second

// EmbeddedConfig configures an in-process nats-server with JetStream.
type EmbeddedConfig struct {
	// StoreDir holds JetStream's file store. Required: restarting a server on the same
	// StoreDir (and Port) finds its streams and consumers again.
	StoreDir string
	// Host to listen on. Empty means 127.0.0.1: an embedded server is for one machine.
	Host string
	// Port to listen on; 0 or -1 picks a free one (read it back with Port or
	// ClientURL). Note that nats-server itself reads 0 as 4222; this config does not.
	Port int
	// ServerName names the server in logs and JetStream metadata. Empty lets the
	// server generate one; set it to keep the same identity across restarts. A
	// clustered server needs one, unique in its cluster: JetStream's Raft groups know
	// their peers by it.
	ServerName string
	// Cluster, with Routes, makes the server one of a cluster and runs JetStream
	// clustered. The zero value is a server on its own.
	Cluster ClusterConfig
	// MonitorHost and MonitorPort are where the server's HTTP monitoring listens
	// (/healthz, /varz, /jsz, /connz...): MonitorPort 0 turns it off, -1 picks a free
	// port (read it back with MonitorURL). MonitorHost empty means Host.
	MonitorHost string
	MonitorPort int
	// ReadyTimeout bounds the wait for ReadyForConnections (DefaultReadyTimeout if 0).
	ReadyTimeout time.Duration
	// SyncAlways makes the file store fsync every write. NATS otherwise fsyncs every
	// SyncInterval (2 minutes by default), so an OS crash can lose acknowledged
	// messages; shardmatch tolerates that (streams are buffers), chaos runs may not.
	SyncAlways bool
	// SyncInterval overrides the file store's fsync interval (0 keeps the default).
	SyncInterval time.Duration
	// MaxPayload overrides the server's maximum message size (0 keeps 1 MiB).
	MaxPayload int32
	// MaxStore and MaxMemory cap JetStream's file and memory use (0 lets the server
	// size them from the machine).
	MaxStore, MaxMemory int64
	// Logger receives the server's logs (notices at info, debug and trace at debug).
	// Nil keeps the server silent.
	Logger *slog.Logger
	// Configure, if set, adjusts the server's options last, before it starts: e.g.
	// natsauth's Deployment.ConfigureServer puts it in operator (JWT) mode.
	Configure func(*server.Options) error
}

// StartEmbedded starts a nats-server with JetStream on cfg and waits until it accepts
// connections. The caller shuts it down with Shutdown. A listener that cannot bind
// (a port in use, say) fails it at once, with the server's own message.
//
// A clustered server is ready once its listeners are: JetStream's meta group forms
// when a majority of the cluster has met over routes, and until then the JetStream
// API answers "JetStream system temporarily unavailable" (clients retry). Its HTTP
// /healthz (see MonitorPort) answers 200 only once this server is current with the
// cluster; /healthz?js-enabled-only=true once JetStream is on, whatever its peers do.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = server.RANDOM_PORT
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		Host:               cfg.Host,
		Port:               cfg.Port,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		SyncAlways:         cfg.SyncAlways,
		SyncInterval:       cfg.SyncInterval,
		MaxPayload:         cfg.MaxPayload,
		JetStreamMaxStore:  cfg.MaxStore,
		JetStreamMaxMemory: cfg.MaxMemory,
		NoSigs:             true,
		NoLog:              cfg.Logger == nil,
	}
	if cfg.MonitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = cmp.Or(cfg.MonitorHost, cfg.Host), cfg.MonitorPort
	}
	if c := cfg.Cluster; c.clustered() {
		opts.Cluster.Name = c.Name
		opts.Cluster.Host = cmp.Or(c.Host, cfg.Host)
		opts.Cluster.Port = c.Port
		if c.Port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		// The server checks a peer's route against Cluster.Username/Password, presents
		// the credentials of a seed route's URL, and those of Cluster on the routes it
		// learns of (implicit routes): the seeds carry them too.
		opts.Cluster.Username, opts.Cluster.Password = c.Username, c.Password
		opts.Routes = make([]*url.URL, len(c.Routes))
		for i, u := range c.Routes {
			cp := *u
			if c.authenticated() {
				cp.User = url.UserPassword(c.Username, c.Password)
			}
			opts.Routes[i] = &cp
		}
	}
	if cfg.Configure != nil {
		if err := cfg.Configure(opts); err != nil {
			return nil, fmt.Errorf("natsutil: configure server: %w", err)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsutil: new server: %w", err)
	}
	// The server reports a failed start (a listener that cannot bind, JetStream
	// refusing its store) only through its logger's Fatalf, and then stops starting:
	// record it so StartEmbedded can fail with it instead of waiting for readiness.
	fatal := &fatalRecorder{next: cfg.Logger}
	s.SetLoggerV2(fatal, cfg.Logger != nil, false, false)
	s.Start()
	for deadline := time.Now().Add(cfg.ReadyTimeout); !s.ReadyForConnections(50 * time.Millisecond); {
		if msg := fatal.first(); msg != "" {
			Shutdown(s)
			return nil, fmt.Errorf("natsutil: server %s:%d did not start: %s", cfg.Host, cfg.Port, msg)
		}
		if time.Now().After(deadline) {
			Shutdown(s)
			return nil, fmt.Errorf("natsutil: server on %s:%d not ready within %s", cfg.Host, cfg.Port, cfg.ReadyTimeout)
		}
	}
	if msg := fatal.first(); msg != "" { // monitoring or JetStream failed before the accept loops
		Shutdown(s)
		return nil, fmt.Errorf("natsutil: server %s:%d did not start: %s", cfg.Host, cfg.Port, msg)
	}
	if !s.JetStreamEnabled() {
		Shutdown(s)
		return nil, errors.New("natsutil: server started without JetStream")
	}
	return s, nil
}

// Shutdown stops s and waits until it has stopped; nil is a no-op. Connected clients
// see a disconnect and, if configured to, reconnect to a server started on the same
// port.
func Shutdown(s *server.Server) {
	if s == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Port returns the TCP port s listens on for clients (0 if it is not listening).
func Port(s *server.Server) int {
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// ClusterPort returns the TCP port s listens on for routes (0 if it is not clustered).
func ClusterPort(s *server.Server) int {
	if a := s.ClusterAddr(); a != nil {
		return a.Port
	}
	return 0
}

// MonitorURL returns the base URL of s's HTTP monitoring, http://host:port with the
// bound port ("" if monitoring is off). An unspecified listen host (0.0.0.0, ::)
// reads as 127.0.0.1.
func MonitorURL(s *server.Server) string {
	a := s.MonitorAddr()
	if a == nil {
		return ""
	}
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// fatalRecorder is the server's logger: it keeps the first Fatalf message, and
// passes everything on to next if it is not nil.
type fatalRecorder struct {
	next *slog.Logger
	mu   sync.Mutex
	msg  string
}

func (f *fatalRecorder) first() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func (f *fatalRecorder) Fatalf(format string, v ...any) {
	f.mu.Lock()
	if f.msg == "" {
		f.msg = fmt.Sprintf(format, v...)
	}
	f.mu.Unlock()
	if f.next != nil {
		slogAdapter{f.next}.Fatalf(format, v...)
	}
}

func (f *fatalRecorder) Noticef(format string, v ...any) { f.pass().Noticef(format, v...) }
func (f *fatalRecorder) Warnf(format string, v ...any)   { f.pass().Warnf(format, v...) }
func (f *fatalRecorder) Errorf(format string, v ...any)  { f.pass().Errorf(format, v...) }
func (f *fatalRecorder) Debugf(format string, v ...any)  { f.pass().Debugf(format, v...) }
func (f *fatalRecorder) Tracef(format string, v ...any)  { f.pass().Tracef(format, v...) }

// pass is where a non-fatal message goes: next, or nowhere.
func (f *fatalRecorder) pass() server.Logger {
	if f.next == nil {
		return server.Logger(nopLogger{})
	}
	return slogAdapter{f.next}
}

// nopLogger drops everything.
type nopLogger struct{}

func (nopLogger) Noticef(string, ...any) {}
func (nopLogger) Warnf(string, ...any)   {}
func (nopLogger) Fatalf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any)  {}
func (nopLogger) Debugf(string, ...any)  {}
func (nopLogger) Tracef(string, ...any)  {}

// slogAdapter is nats-server's Logger over slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
