package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/config/tlstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// startSecureNATS runs NATS with JetStream in the test process, demanding TLS with a
// client certificate signed by pki's CA, and the user "svc" with password pass.
func startSecureNATS(t *testing.T, pki *tlstest.PKI, pass string) string {
	t.Helper()
	tc, err := pki.ServerConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: "svc", Password: pass, TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2,
		NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return "tls://" + s.Addr().String()
}

// TestMultiProcessNATSTLSAndAuth runs a coordinator node and two shards against a
// NATS that demands mutual TLS and a password, given as --nats-tls-* flags and the
// password in each binary's environment: a shard registers and its load driver's
// matches commit. Then a coordinator with the wrong password and a shard that trusts
// the wrong CA each exit 1 at once, saying what is wrong and which flags to check.
func TestMultiProcessNATSTLSAndAuth(t *testing.T) {
	d := newDeployment(t)
	pki, err := tlstest.New(d.dir, "nats")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.New(d.dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	const pass = "s3cret-pass"
	d.natsURL = startSecureNATS(t, pki, pass)
	d.natsConf = config.NATS{URL: d.natsURL, User: "svc", Password: pass, TLSCA: pki.CAFile,
		TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile}
	tlsFlags := func(ca string) []string {
		return []string{"--nats-user", "svc", "--nats-tls-ca", ca, "--nats-tls-cert", pki.ClientCertFile,
			"--nats-tls-key", pki.ClientKeyFile}
	}

	d.nodeEnv, d.shardEnv = []string{"SHARDMATCH_NATS_PASSWORD=" + pass}, []string{"SHARDSVC_NATS_PASSWORD=" + pass}
	raft := freePort(t)
	d.startNode("c1", raft, append(tlsFlags(pki.CAFile), "--peers", fmt.Sprintf("c1=127.0.0.1:%d", raft), "--bootstrap")...)
	d.waitLeader("")
	s1 := d.startShard("s1", append(tlsFlags(pki.CAFile), "--propose-rate", "20", "--peer-shards", "s2", "--inflight", "4")...)
	d.startShard("s2", tlsFlags(pki.CAFile)...)
	testutil.WaitFor(t, 30*time.Second, "matches committed over TLS", func() error {
		s, err := d.shardStatus(s1.id)
		if err != nil {
			return err
		}
		if s.Driver == nil || s.Driver.Committed < 5 {
			return fmt.Errorf("driver %+v", s.Driver)
		}
		return nil
	})

	// The test's own client connects the same way (config.NATS.Connect).
	if nc := d.connect(); !nc.TLSRequired() {
		t.Error("the test's connection is not TLS")
	}

	// Wrong password: the node gives up at once instead of retrying for a minute.
	bad := &proc{name: "c9-wrong-password", bin: d.coord, env: []string{"SHARDMATCH_NATS_PASSWORD=wrong"},
		args: d.nodeArgs("c9", freePort(t), freePort(t), append(tlsFlags(pki.CAFile), "--peers", "c9=127.0.0.1:1", "--bootstrap")...)}
	d.add(bad)
	if code := bad.wait(t, 15*time.Second); code != 1 {
		t.Errorf("serve with a wrong password: exit %d, want 1", code)
	}
	if out := bad.out.String(); !strings.Contains(out, "NATS refused the credentials") || !strings.Contains(out, "--nats-password") {
		t.Errorf("serve with a wrong password says:\n%s", out)
	}

	// Wrong CA: the shard does not trust the server and says so.
	badShard := &proc{name: "s9-wrong-ca", bin: d.shard, env: d.shardEnv, args: d.shardArgs("s9", "", tlsFlags(other.CAFile)...)}
	d.add(badShard)
	if code := badShard.wait(t, 15*time.Second); code != 1 {
		t.Errorf("shardsvc with the wrong CA: exit %d, want 1", code)
	}
	if out := badShard.out.String(); !strings.Contains(out, "NATS TLS failed") || !strings.Contains(out, "--nats-tls-ca") ||
		!strings.Contains(out, "unknown authority") {
		t.Errorf("shardsvc with the wrong CA says:\n%s", out)
	}
}
