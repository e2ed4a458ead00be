package natsembed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

func TestStartEmbeddedValidates(t *testing.T) {
	if _, err := natsembed.StartEmbedded(natsembed.EmbeddedConfig{}); err == nil {
		t.Fatal("no StoreDir accepted")
	}
	if _, err := natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: t.TempDir(), Port: 70000}); err == nil {
		t.Fatal("port 70000 accepted")
	}
	natsembed.Shutdown(nil) // a no-op
}

// A server restarted on the same StoreDir and port finds its streams and messages,
// and a client configured to reconnect carries on.
func TestEmbeddedRestartKeepsStreams(t *testing.T) {
	r := natstest.StartRestartable(t)
	s := r.Server()
	port := natsembed.Port(s)
	if port <= 0 || s.ClientURL() != fmt.Sprintf("nats://127.0.0.1:%d", port) {
		t.Fatalf("port %d, url %s", port, s.ClientURL())
	}
	nc, js := natstest.Connect(t, s)
	ctx := context.Background()
	if err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "sm.v1.shard.s1.cmd", []byte{byte(i)}, jetstream.WithMsgID(fmt.Sprint("tx", i))); err != nil {
			t.Fatal(err)
		}
	}
	r.Restart()
	// The client reconnects on its own; poll until the JetStream API answers it.
	var st jetstream.Stream
	testutil.WaitFor(t, 10*time.Second, "the JetStream API after the restart", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("client status %v", nc.Status())
		}
		c, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		var err error
		st, err = js.Stream(c, "SM_CMD")
		return err
	})
	if n := st.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("SM_CMD has %d messages after restart, want 3", n)
	}
	// The dedupe window survives the restart too.
	ack, err := js.Publish(ctx, "sm.v1.shard.s1.cmd", []byte{0}, jetstream.WithMsgID("tx0"))
	if err != nil || !ack.Duplicate {
		t.Fatalf("republish after restart: %+v, %v", ack, err)
	}
}
