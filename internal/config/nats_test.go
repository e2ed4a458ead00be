package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/config/tlstest"
)

// startSecureNATS runs a NATS server that demands TLS with a client certificate
// signed by pki's CA and the user "svc" with password "right".
func startSecureNATS(t *testing.T, pki *tlstest.PKI) string {
	t.Helper()
	tc, err := pki.ServerConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Username: "svc", Password: "right",
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return fmt.Sprintf("tls://%s", s.Addr())
}

// TestNATSConnectTLSAndAuth: the right CA, client certificate and password connect;
// every wrong one fails at once with the sentinel error and a message naming the
// flags to check, instead of retrying until the deadline.
func TestNATSConnectTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlstest.New(dir, "good")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.New(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	url := startSecureNATS(t, pki)
	log := slog.New(slog.DiscardHandler)
	good := NATS{URL: url, User: "svc", Password: "right", TLSCA: pki.CAFile, TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := good.Connect(ctx, "test", log)
	if err != nil {
		t.Fatalf("good settings: %v", err)
	}
	if err := nc.Publish("x", []byte("y")); err != nil || nc.Flush() != nil || !nc.TLSRequired() {
		t.Errorf("publish over TLS: %v (tls required %v)", err, nc.TLSRequired())
	}
	nc.Close()

	for _, c := range []struct {
		name     string
		edit     func(n *NATS)
		want     error
		mentions string
	}{
		{"wrong password", func(n *NATS) { n.Password = "wrong" }, ErrNATSAuth, "--nats-password"},
		{"unknown user", func(n *NATS) { n.User = "nobody" }, ErrNATSAuth, "Authorization Violation"},
		{"no credentials", func(n *NATS) { n.User, n.Password = "", "" }, ErrNATSAuth, "--nats-user"},
		{"wrong CA", func(n *NATS) { n.TLSCA = other.CAFile }, ErrNATSTLS, "--nats-tls-ca"},
		{"system roots only", func(n *NATS) { n.TLSCA = "" }, ErrNATSTLS, "certificate"},
		{"client certificate of another CA", func(n *NATS) { n.TLSCert, n.TLSKey = other.ClientCertFile, other.ClientKeyFile }, ErrNATSTLS, "--nats-tls-cert"},
		{"no client certificate", func(n *NATS) { n.TLSCert, n.TLSKey = "", "" }, ErrNATSTLS, "--nats-tls-cert"},
		{"missing CA file", func(n *NATS) { n.TLSCA = filepath.Join(dir, "nope.pem") }, ErrNATSTLS, "nope.pem"},
		{"missing creds file", func(n *NATS) { n.User, n.Password, n.Creds = "", "", filepath.Join(dir, "nope.creds") }, ErrNATSAuth, "--nats-creds"},
		{"plain text to a TLS server", func(n *NATS) {
			n.URL, n.TLSCA, n.TLSCert, n.TLSKey = strings.Replace(url, "tls://", "nats://", 1), "", "", ""
		}, ErrNATSTLS, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := good
			c.edit(&n)
			start := time.Now()
			nc, err := n.Connect(ctx, "test", log)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mentions) {
				t.Errorf("error %q: want %v mentioning %q", err, c.want, c.mentions)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %s: a permanent failure must not be retried", el)
			}
		})
	}
}

// TestNATSConnectRetriesUntilDeadline: nothing listening is worth waiting for (the
// server may come up later), so Connect retries until its context ends.
func TestNATSConnectRetriesUntilDeadline(t *testing.T) {
	n := NATS{URL: "nats://127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := n.Connect(ctx, "test", slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNATSAuth) || errors.Is(err, ErrNATSTLS) {
		t.Fatalf("error %v: want the deadline, and no permanent failure", err)
	}
}

func TestNATSValidate(t *testing.T) {
	for _, c := range []struct {
		n    NATS
		want string
	}{
		{NATS{}, "--nats-url is empty"},
		{NATS{URL: "x", TLSCert: "c"}, "go together"},
		{NATS{URL: "x", Creds: "c", User: "u"}, "not both"},
		{NATS{URL: "x", Password: "p"}, "needs --nats-user"},
	} {
		if err := c.n.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.n, err, c.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://u:secret@h:1, nats://tok@h:2,nats://h:3")
	if strings.Contains(got, "secret") || strings.Contains(got, "tok@") || !strings.Contains(got, "u:xxxxx@h:1") ||
		!strings.Contains(got, "nats://h:3") {
		t.Errorf("redacted %q", got)
	}
}

// TestNATSOptions: the options reconnect forever, carry the name and the
// credentials, and make TLS mandatory with the CA and client certificate given.
func TestNATSOptions(t *testing.T) {
	pki, err := tlstest.New(t.TempDir(), "opts")
	if err != nil {
		t.Fatal(err)
	}
	apply := func(n NATS) nats.Options {
		t.Helper()
		o := nats.GetDefaultOptions()
		for _, opt := range n.Options("node-1", slog.New(slog.DiscardHandler)) {
			if err := opt(&o); err != nil {
				t.Fatal(err)
			}
		}
		return o
	}
	o := apply(NATS{URL: "nats://x:4222", User: "svc", Password: "pw", TLSCA: pki.CAFile, TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile})
	if o.Name != "node-1" || o.MaxReconnect != -1 || o.ReconnectWait <= 0 || o.ReconnectBufSize < 1<<20 {
		t.Errorf("reconnect settings: name %q max %d wait %s buf %d", o.Name, o.MaxReconnect, o.ReconnectWait, o.ReconnectBufSize)
	}
	if o.User != "svc" || o.Password != "pw" || !o.Secure || o.RootCAsCB == nil || o.TLSCertCB == nil {
		t.Errorf("credentials and TLS: user %q secure %v roots %v cert %v", o.User, o.Secure, o.RootCAsCB != nil, o.TLSCertCB != nil)
	}
	if o.DisconnectedErrCB == nil || o.ReconnectedCB == nil || o.AsyncErrorCB == nil {
		t.Error("connection events are not logged")
	}
	if plain := apply(NATS{URL: "nats://x:4222"}); plain.Secure || plain.User != "" || plain.UserJWT != nil {
		t.Errorf("no TLS or credentials asked for, got secure %v user %q", plain.Secure, plain.User)
	}
}

// A --nats-url that can never connect is refused at start (instead of retried
// forever), without quoting a password.
func TestNATSValidateURLs(t *testing.T) {
	for _, ok := range []string{"nats://127.0.0.1:4222", "127.0.0.1:4222", "nats://a:4222, nats://b:4222", "tls://u:p@host:4222", "localhost"} {
		n := NATS{URL: ok}
		if err := n.Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"::bad", "nats://u:secret@::bad", "nats://", "nats://a:4222,", "nats://:4222"} {
		n := NATS{URL: bad}
		err := n.Validate()
		if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
