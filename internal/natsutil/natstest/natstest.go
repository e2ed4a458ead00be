package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/internal/natsembed"
)

// ServerName is the name every server this package starts carries, so a restarted
// server keeps its JetStream identity.
const ServerName = "natstest"

// Start starts a NATS server with JetStream on a free port of 127.0.0.1, its store
// in a fresh tb.TempDir(), and waits until it accepts connections. The server is shut
// down when the test ends; shutting it down earlier with natsembed.Shutdown is allowed.
// Start fails the test if the server does not start.
func Start(tb testing.TB) *server.Server {
	tb.Helper()
	s := start(tb, natsembed.EmbeddedConfig{StoreDir: tb.TempDir(), ServerName: ServerName})
	tb.Cleanup(func() { natsembed.Shutdown(s) })
	return s
}

func start(tb testing.TB, cfg natsembed.EmbeddedConfig) *server.Server {
	tb.Helper()
	s, err := natsembed.StartEmbedded(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Restartable is an embedded NATS server a test can restart on the same store and
// port. Use it from the test's goroutine only.
type Restartable struct {
	tb  testing.TB
	cfg natsembed.EmbeddedConfig
	srv *server.Server
}

// StartRestartable starts a server as Start does and returns it as a Restartable.
// Whatever server is running when the test ends is shut down then (the cleanup is
// registered once, here, so restarts do not change the order of the test's cleanups).
func StartRestartable(tb testing.TB) *Restartable {
	tb.Helper()
	r := &Restartable{tb: tb, cfg: natsembed.EmbeddedConfig{StoreDir: tb.TempDir(), ServerName: ServerName}}
	r.srv = start(tb, r.cfg)
	r.cfg.Port = natsembed.Port(r.srv)
	tb.Cleanup(func() { natsembed.Shutdown(r.srv) })
	return r
}

// Server returns the server running now; it changes at every Restart.
func (r *Restartable) Server() *server.Server { return r.srv }

// Restart shuts the server down, waits until it has stopped, and starts a new one
// on the same store and port; clients configured to reconnect find it there. It fails
// the test if the new server does not start (the port was taken meanwhile, say).
func (r *Restartable) Restart() {
	r.tb.Helper()
	natsembed.Shutdown(r.srv)
	r.srv = nil
	r.srv = start(r.tb, r.cfg)
}

// Connect opens a client connection to s that reconnects forever, and its JetStream
// context; the connection closes when the test ends.
func Connect(tb testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}
