package natstest_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
)

// Every server a test starts must be gone when it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Start gives a running JetStream server on loopback, and the test's end stops it.
func TestStartStopsAtCleanup(t *testing.T) {
	var s *server.Server
	t.Run("inner", func(t *testing.T) {
		s = natstest.Start(t)
		if !s.Running() || !s.JetStreamEnabled() || !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
			t.Fatalf("running %v, JetStream %v, url %s", s.Running(), s.JetStreamEnabled(), s.ClientURL())
		}
		if s.Name() != natstest.ServerName {
			t.Errorf("name %q, want %q", s.Name(), natstest.ServerName)
		}
		natsembed.Shutdown(s) // early shutdown is allowed: the cleanup's is a no-op
		s = natstest.Start(t)
	})
	if s.Running() {
		t.Fatal("the server still runs after its test ended")
	}
}

// A Restartable comes back on the same port and store; the test's end stops
// whichever server runs then.
func TestRestartableKeepsPortAndStore(t *testing.T) {
	var last *server.Server
	t.Run("inner", func(t *testing.T) {
		r := natstest.StartRestartable(t)
		first := r.Server()
		port, dir := natsembed.Port(first), first.StoreDir()
		r.Restart()
		last = r.Server()
		if first.Running() || !last.Running() {
			t.Fatalf("after Restart: old running %v, new running %v", first.Running(), last.Running())
		}
		if natsembed.Port(last) != port || last.StoreDir() != dir || last.Name() != first.Name() {
			t.Errorf("restarted on port %d, store %s, name %s; want %d, %s, %s",
				natsembed.Port(last), last.StoreDir(), last.Name(), port, dir, first.Name())
		}
	})
	if last.Running() {
		t.Fatal("the restarted server still runs after its test ended")
	}
}
