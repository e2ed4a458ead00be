package natsauth_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/natsauth"
)

// Revoking a user and pushing the account to the running server disconnects it and
// refuses it from then on; another user of the same role is untouched.
func TestRevokeAndPush(t *testing.T) {
	e := startAuthEnv(t)
	victim, other := e.connect(natsauth.RoleShard, "s1"), e.connect(natsauth.RoleShard, "s2")
	key, err := natsauth.CredsPublicKey(mustRead(t, victim))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.Revoke(key, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsauth.PushAccount(ctx, e.srv.ClientURL(), e.d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the revoked user disconnected", func() bool { return !victim.IsConnected() })
	if _, err := nats.Connect(e.srv.ClientURL(), nats.UserCredentials(victim.credsPath)); err == nil {
		t.Fatal("the revoked user connected again")
	}
	if !other.IsConnected() || other.FlushTimeout(time.Second) != nil {
		t.Fatal("another shard was disconnected")
	}
}

func mustRead(t *testing.T, c *authConn) []byte {
	t.Helper()
	b, err := os.ReadFile(c.credsPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
