package natsutil

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// server generate one; set it to keep the same identity across restarts.
	ServerName string
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
}

// StartEmbedded starts a nats-server with JetStream on cfg and waits until it accepts
// connections. The caller shuts it down with Shutdown.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsutil: EmbeddedConfig.StoreDir is empty")
	}
	if cfg.Port < -1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("natsutil: EmbeddedConfig.Port (%d) must be in [-1, 65535]", cfg.Port)
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
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsutil: new server: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLoggerV2(slogAdapter{cfg.Logger}, true, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		Shutdown(s)
		return nil, fmt.Errorf("natsutil: server on %s:%d not ready within %s", cfg.Host, cfg.Port, cfg.ReadyTimeout)
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

// slogAdapter is nats-server's Logger over slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
