package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/config/tlstest"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestMultiProcessSecureAdmin: real processes with the admin API over HTTPS and a
// read token. A second node joins through the leader's https admin API trusting
// --admin-ca; `coordinator status` reads with the read token (and is refused without
// it); `coordinator prestop --admin-ca` hands leadership over; both operator actions
// are in the leader's --audit-log and published on <prefix>.v1.events.audit.
func TestMultiProcessSecureAdmin(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	pki, err := tlstest.New(d.dir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	var nc *nats.Conn
	testutil.WaitFor(t, 30*time.Second, "NATS up", func() (err error) { nc, err = nats.Connect(d.natsURL); return err })
	defer nc.Close()
	events, err := nc.SubscribeSync(natsutil.MustSubjects(natsutil.DefaultPrefix).EventsAudit())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const readToken = "read-me"
	d.nodeEnv = []string{"SHARDMATCH_ADMIN_READ_TOKEN=" + readToken}
	tlsArgs := []string{"--admin-tls-cert", pki.ServerCertFile, "--admin-tls-key", pki.ServerKeyFile, "--admin-ca", pki.CAFile}
	audit := filepath.Join(d.dir, "c1-audit.log")
	p1 := freePort(t)
	c1 := d.startNode("c1", p1, append([]string{"--peers", fmt.Sprintf("c1=127.0.0.1:%d", p1), "--bootstrap",
		"--audit-log", audit}, tlsArgs...)...)
	c1.adminURL = strings.Replace(c1.adminURL, "http://", "https://", 1)
	hc, err := admin.NewHTTPClient(pki.CAFile, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	sc := &admin.StatusClient{HTTP: hc, Token: readToken}
	testutil.WaitFor(t, 30*time.Second, "c1 leading", func() error {
		st, err := sc.Fetch(context.Background(), c1.adminURL)
		if err == nil && !st.Leading {
			err = fmt.Errorf("c1 is %s", st.Role)
		}
		return err
	})
	c2 := d.startNode("c2", freePort(t), append([]string{"--join", c1.adminURL}, tlsArgs...)...)
	c2.adminURL = strings.Replace(c2.adminURL, "http://", "https://", 1)
	testutil.WaitFor(t, 30*time.Second, "c2 joined over https", func() error {
		st, err := sc.Fetch(context.Background(), c1.adminURL)
		if err == nil && len(voters(st)) != 2 {
			err = fmt.Errorf("voters %v", voters(st))
		}
		return err
	})

	// coordinator status: the read token works, no token is 401.
	var out, errOut bytes.Buffer
	if code := runStatus([]string{"--addr", c1.adminURL + "," + c2.adminURL, "--admin-ca", pki.CAFile,
		"--admin-read-token", readToken}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "c2") {
		t.Fatalf("status with the read token: %d\n%s%s", code, out.String(), errOut.String())
	}
	t.Setenv(envAdminReadToken, "")
	t.Setenv(envAdminToken, "")
	out.Reset()
	if code := runStatus([]string{"--addr", c1.adminURL, "--admin-ca", pki.CAFile}, &out, &errOut); code == 0 ||
		!strings.Contains(out.String(), "UNAUTHENTICATED") {
		t.Fatalf("status without a token: %d\n%s", code, out.String())
	}

	// coordinator prestop over https: c1 hands leadership to c2.
	t.Setenv(envAdminToken, adminToken)
	out.Reset()
	errOut.Reset()
	if code := runPrestop([]string{"--admin-addr", c1.adminURL, "--admin-ca", pki.CAFile}, &out, &errOut); code != 0 {
		t.Fatalf("prestop: %d %s%s", code, out.String(), errOut.String())
	}

	// The audit trail: the join and the transfer, in c1's file and as events.
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{`"path":"/v1/voters"`, `"path":"/v1/leader/transfer"`,
		`"identity":"` + admin.TokenIdentity(admin.RoleOperate, adminToken) + `"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, adminToken+`"`) {
		t.Error("the audit log holds the token in clear")
	}
	seen := map[string]bool{}
	for !seen["/v1/voters"] || !seen["/v1/leader/transfer"] {
		msg, err := events.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("audit events seen %v: %v", seen, err)
		}
		for _, p := range []string{"/v1/voters", "/v1/leader/transfer"} {
			if bytes.Contains(msg.Data, []byte(`"path":"`+p+`"`)) {
				seen[p] = true
			}
		}
	}
}

// TestServeAdminFlags: the admin security settings parse from flags, env and config
// keys, and each bad combination is a usage error naming the flag.
func TestServeAdminFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--id", "c1", "--data", dir}
	var stderr bytes.Buffer
	o, code, done := parseServeOptions(append(base, "--admin-max-body-bytes", "4096"), &stderr,
		env(map[string]string{"SHARDMATCH_ADMIN_READ_TOKEN": "rt", "SHARDMATCH_ADMIN_MAX_CONNS_PER_CLIENT": "5"}))
	if done || o.admin.readToken != "rt" || o.admin.maxBodyBytes != 4096 || o.admin.maxConnsPerClient != 5 {
		t.Fatalf("code %d %+v: %s", code, o.admin, stderr.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-tls-cert", "x.pem"}, "--admin-tls-cert and --admin-tls-key go together"},
		{[]string{"--admin-tls-client-ca", "ca.pem"}, "--admin-tls-client-ca needs"},
		{[]string{"--admin-max-body-bytes", "10"}, "--admin-max-body-bytes"},
		{[]string{"--admin-max-conns-per-client", "0"}, "--admin-max-conns-per-client"},
		{[]string{"--admin-ca", filepath.Join(dir, "missing.pem")}, "--admin-ca"},
	} {
		stderr.Reset()
		if _, code, done := parseServeOptions(append(append([]string{}, base...), c.args...), &stderr, env(nil)); !done || code != 2 ||
			!strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", c.args, code, stderr.String(), c.want)
		}
	}
}
