package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestDevStackSecure runs the secured one-process stack (dev --secure, bench --secure):
// matches commit with every connection on its own role's credentials over mutual TLS
// and signed commands; a connection without them is refused; then two controls show the defences are live, not decorative: a shard's
// credentials cannot publish a command (NATS refuses it), and once the coordinators
// stop signing, the shards refuse their commands.
func TestDevStackSecure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev stack")
	}
	ctx := context.Background()
	st, err := startBenchStack(ctx, benchOptions{nodes: 1, shards: 2, log: "off"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	for range 5 {
		if err := st.proposeFresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range st.shards {
		if s := sh.sdk.Stats(); s.Handled == 0 || s.SignatureRejected() != 0 {
			t.Errorf("%s: %+v", sh.id, s)
		}
	}

	// Without credentials and a client certificate, no connection.
	if nc, err := nats.Connect(st.nats.URL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("NATS took a connection without credentials or TLS")
	}

	// A shard's credentials cannot publish on a command subject.
	perm := make(chan error, 1)
	opts, err := st.sec.dialOptions(natsauth.RoleShard, "s1")
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case perm <- err:
		default:
		}
	}))
	nc, err := nats.Connect(st.nats.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("sm.v1.shard.s2.cmd", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-perm:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("forged command: %v, want a permission violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a shard's credentials published on a command subject without a permission violation")
	}

	// Unsigned commands are refused by the shards.
	for _, sl := range st.nats.slots {
		sl.mu.Lock()
		sl.stack.Transport.SetSigner(nil)
		sl.mu.Unlock()
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_ = st.proposeFresh(pctx)
	testutil.WaitFor(t, 10*time.Second, "unsigned commands to be refused", func() error {
		var n uint64
		for _, sh := range st.shards {
			n += sh.sdk.Stats().Unsigned
		}
		if n == 0 {
			return fmt.Errorf("no shard refused an unsigned command")
		}
		return nil
	})
}
