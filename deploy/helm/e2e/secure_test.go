package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/deploy/helm/render"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// The Secrets of the secured install, named as in deploy/helm/testdata/secure.yaml.
const (
	secAdmin       = "sm-admin"
	secAdminTLS    = "sm-admin-tls"
	secRaftTLS     = "sm-raft-tls"
	secSigning     = "sm-command-signing"
	secNATSAuth    = "sm-nats-auth"
	secNATSCoord   = "sm-nats-coordinator"
	secNATSShards  = "sm-nats-shards"
	coordAdminSvc  = "rel-shardmatch-coordinator"
	coordHeadless  = "rel-shardmatch-coordinator-headless"
	secureRate     = 50
	secureProposer = "e2e"
)

// secureCreds are the credentials an operator makes before a secured install
// (docs/kubernetes.md, "Security"), and the Secrets holding them.
type secureCreds struct {
	dir                  string
	adminToken, readTok  string
	verifyKey            string // the command signing key's public key
	adminCA              []byte
	proposerCreds        string // a file: the load's NATS credentials
	secrets              []*corev1.Secret
	shardIDs             []string
	coordinatorCredsFile string
}

// makeSecureCreds runs the built coordinator binary as docs/kubernetes.md tells an
// operator to: nats-auth init and user (coordinator, one per demo shard, a proposer),
// signing-key, and tls-certs for the Raft and the admin certificates; then makes the
// Secrets the values refer to, as `kubectl create secret generic --from-file` would.
func makeSecureCreds(t *testing.T, bin string, shards int) *secureCreds {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "creds")
	sc := &secureCreds{dir: dir, adminToken: "e2e-operate-token", readTok: "e2e-read-token"}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("coordinator %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	secret := func(name string, data map[string][]byte) {
		sc.secrets = append(sc.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Type: corev1.SecretTypeOpaque, Data: data})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(dir, "auth")
	p := func(name string) string { return filepath.Join(dir, name) }

	// NATS operator mode: the server gets auth/server/, whole.
	run("nats-auth", "init", "--out", auth)
	server := map[string][]byte{}
	ents, err := os.ReadDir(filepath.Join(auth, "server"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			server[e.Name()] = read(filepath.Join(auth, "server", e.Name()))
		}
	}
	if len(server) == 0 {
		t.Fatalf("nats-auth init wrote nothing to %s/server", auth)
	}
	secret(secNATSAuth, server)
	sc.coordinatorCredsFile = p("coordinator.creds")
	run("nats-auth", "user", "--dir", auth, "--role", "coordinator", "--id", release, "--out", sc.coordinatorCredsFile)
	secret(secNATSCoord, map[string][]byte{"nats.creds": read(sc.coordinatorCredsFile)})
	shardCreds := map[string][]byte{}
	for i := range shards {
		id := fmt.Sprintf("%s-%d", shardSTS, i)
		sc.shardIDs = append(sc.shardIDs, id)
		f := p("shard-" + id + ".creds")
		run("nats-auth", "user", "--dir", auth, "--role", "shard", "--id", id, "--out", f)
		shardCreds[filepath.Base(f)] = read(f)
	}
	secret(secNATSShards, shardCreds)
	sc.proposerCreds = p("proposer.creds")
	run("nats-auth", "user", "--dir", auth, "--role", "proposer", "--id", secureProposer, "--out", sc.proposerCreds)

	// Command signing: the seed in a Secret, the public key to the shards.
	sc.verifyKey = strings.TrimSpace(run("signing-key", "--out", p("cmd.nk")))
	secret(secSigning, map[string][]byte{"command-signing.nk": read(p("cmd.nk"))})

	// Certificates: Raft peers by their stable DNS names; the admin API also by the
	// admin Service's names and 127.0.0.1 (the preStop hook).
	wildcard := "*." + coordHeadless + "." + namespace + ".svc.cluster.local"
	run("tls-certs", "--out", p("raft"), "--hosts", wildcard, "--names", "raft")
	secret(secRaftTLS, map[string][]byte{"ca.crt": read(p("raft/ca.pem")), "tls.crt": read(p("raft/raft.pem")),
		"tls.key": read(p("raft/raft-key.pem"))})
	adminHosts := []string{wildcard, coordAdminSvc, coordAdminSvc + "." + namespace, coordAdminSvc + "." + namespace + ".svc",
		coordAdminSvc + "." + namespace + ".svc.cluster.local", "127.0.0.1"}
	run("tls-certs", "--out", p("admin"), "--hosts", strings.Join(adminHosts, ","), "--names", "admin")
	sc.adminCA = read(p("admin/ca.pem"))
	secret(secAdminTLS, map[string][]byte{"ca.crt": sc.adminCA, "tls.crt": read(p("admin/admin.pem")),
		"tls.key": read(p("admin/admin-key.pem"))})

	secret(secAdmin, map[string][]byte{"admin-token": []byte(sc.adminToken), "admin-read-token": []byte(sc.readTok)})
	return sc
}

// renderSecure renders the chart with every security setting on, each credential
// from the Secrets of sc, and adds those Secrets to what the cluster knows.
// restartedAt, if set, is what `kubectl rollout restart` puts on the coordinators'
// pod template.
func renderSecure(t *testing.T, sc *secureCreds, restartedAt string) *Objects {
	t.Helper()
	m, err := render.Render(render.Options{ReleaseName: release, Namespace: namespace, Values: map[string]any{
		"coordinator": map[string]any{
			"replicas":       3,
			"config":         map[string]any{"logLevel": "info"},
			"adminToken":     map[string]any{"existingSecret": secAdmin},
			"adminReadToken": map[string]any{"enabled": true, "existingSecret": secAdmin},
			"adminTLS":       map[string]any{"enabled": true, "existingSecret": secAdminTLS},
			"raftTLS":        map[string]any{"enabled": true, "existingSecret": secRaftTLS},
			"commandSigning": map[string]any{"enabled": true, "existingSecret": secSigning},
			"auditLog":       map[string]any{"enabled": true},
			// Limits on, but above the load: a proposal refused here would be a loss.
			"limits": map[string]any{"maxProposalBytes": 65536, "maxPlayers": 100, "proposerRate": 4 * secureRate,
				"proposerBurst": 8 * secureRate, "adminMaxBodyBytes": 1 << 20, "adminMaxConnsPerClient": 32},
		},
		"nats": map[string]any{
			"auth":     map[string]any{"creds": map[string]any{"existingSecret": secNATSCoord}},
			"embedded": map[string]any{"replicas": 1, "auth": map[string]any{"existingSecret": secNATSAuth}},
		},
		"shards": map[string]any{"enabled": true, "replicas": len(sc.shardIDs), "players": 4000,
			"extraArgs":         []any{"--always-available", "--match-ttl=2s"},
			"auth":              map[string]any{"existingSecret": secNATSShards},
			"commandVerifyKeys": []any{sc.verifyKey}},
	}})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if restartedAt != "" {
		for _, s := range m.StatefulSets {
			if s.Name == coordSTS {
				if s.Spec.Template.Annotations == nil {
					s.Spec.Template.Annotations = map[string]string{}
				}
				s.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = restartedAt
			}
		}
	}
	return &Objects{StatefulSets: m.StatefulSets, Services: m.Services, ConfigMaps: m.ConfigMaps,
		Secrets: append(m.Secrets, sc.secrets...)}
}

// adminHTTP is what an operator's client of the admin API is: it trusts the admin
// CA and checks the admin Service's name (the test dials pod IPs, as Prometheus does
// with serverName).
func adminHTTP(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("admin CA: no certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: coordAdminSvc, MinVersion: tls.VersionTLS12}
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestHelmSecureInstall installs the chart with every security setting on, each
// credential made as docs/kubernetes.md tells an operator (the coordinator binary's
// nats-auth, signing-key and tls-certs) and given as an existing Secret: embedded
// NATS in operator (JWT) mode, the coordinators and each demo shard on their own NATS
// credentials, signed shard commands, Raft mutual TLS, the admin API over HTTPS with a
// read token, the audit log, request limits. Under load from a proposer on its own
// credentials it must form, commit and lose nothing, also across a rolling restart of
// the coordinators (preStop over HTTPS); the preStop hand-overs must be in the audit
// log; and the live install must refuse what it should: NATS without credentials, a
// command published with a proposer's credentials, plain HTTP on the admin port, and
// a mutating admin call without the operate token.
func TestHelmSecureInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a whole deployment of real processes")
	}
	needRoot(t)
	testutil.Exclusive(t, testutil.HeavyProcesses) // judged by commit gaps and latency
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := newEnv(ctx, t)
	sc := makeSecureCreds(t, e.image["/usr/local/bin/coordinator"], 2)

	start := time.Now()
	if err := e.c.Apply(ctx, renderSecure(t, sc, "")); err != nil {
		t.Fatalf("install: %v", err)
	}
	e.scheme, e.http, e.token, e.readToken, e.loadCreds = "https", adminHTTP(t, sc.adminCA), sc.adminToken, sc.readTok, sc.proposerCreds
	if err := e.waitFormed(ctx, 3); err != nil {
		t.Fatal(err)
	}
	t.Logf("installed secured: NATS, 3 coordinators and 2 shards Ready (readiness over HTTPS) and formed in %v",
		time.Since(start).Round(time.Millisecond))
	e.checkSecretFileModes()
	for _, p := range e.c.Pods(coordSTS) {
		if r := p.Plan.Main.Readiness; r == nil || r.Scheme != "HTTPS" {
			t.Errorf("%s: readiness probe %+v, want HTTPS", p.Name(), r)
		}
	}

	load, stopLoad := e.startLoad(t, secureRate, 2*time.Second)
	if id := load.Identity(); id != "proposer-"+secureProposer {
		t.Errorf("the load proposes as %q, want proposer-%s (from its credentials' inbox prefix)", id, secureProposer)
	}
	var windows []Window
	phase := func(name string, f func() error) {
		t.Helper()
		from := load.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		windows = append(windows, Window{Name: name, From: from, To: load.Now()})
	}
	time.Sleep(2 * time.Second) //nolint:forbidigo // the load ramps up
	phase("steady", func() error {
		until := time.Now().Add(5 * time.Second)
		e.negativeControls(ctx, sc)   // on the live install, under load
		time.Sleep(time.Until(until)) //nolint:forbidigo // the load runs on
		return nil
	})
	phase("rolling restart", func() error {
		return e.c.Apply(ctx, renderSecure(t, sc, time.Now().UTC().Format(time.RFC3339)))
	})
	phase("steady after", func() error {
		if err := e.waitFormed(ctx, 3); err != nil {
			return err
		}
		time.Sleep(3 * time.Second) //nolint:forbidigo // the load runs on
		return nil
	})
	stopLoad()
	restarted := 0
	for _, ev := range e.c.Events() {
		if ev.Kind == "update" && strings.HasPrefix(ev.Pod, coordSTS) {
			restarted++
		}
	}
	if restarted != 3 {
		t.Errorf("the rolling restart replaced %d coordinators, want 3", restarted)
	}
	e.verifyRun(ctx, load, secureRate, windows)
	e.checkAuditLog()
	t.Logf("TestHelmSecureInstall took %v", time.Since(began).Round(time.Millisecond))
}

// negativeControls checks that the live install refuses what it must.
func (e *env) negativeControls(ctx context.Context, sc *secureCreds) {
	t := e.t
	t.Helper()
	natsURL := "nats://" + e.c.Pods(natsSTS)[0].IP() + ":4222"

	// NATS without credentials.
	if nc, err := nats.Connect(natsURL, nats.NoReconnect(), nats.Timeout(3*time.Second), nats.Name("e2e-anonymous")); err == nil {
		nc.Close()
		t.Errorf("NATS took a connection without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("NATS without credentials: %v, want an authorization violation", err)
	} else {
		t.Logf("negative control: NATS without credentials refused: %v", err)
	}

	// A proposer's credentials cannot publish a shard command (nor vote for a shard).
	var mu sync.Mutex
	var violations []string
	nc, err := nats.Connect(natsURL, nats.NoReconnect(), nats.Timeout(3*time.Second), nats.Name("e2e-forger"),
		nats.UserCredentials(sc.proposerCreds), nats.CustomInboxPrefix(natsutil.InboxRoot+".proposer-"+secureProposer),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Errorf("NATS with the proposer's credentials: %v", err)
	} else {
		subj, _ := natsutil.NewSubjects("")
		cmd, _ := subj.ShardCmd(sc.shardIDs[0])
		vote, _ := subj.CoordVote(sc.shardIDs[0])
		for _, s := range []string{cmd, vote} {
			if err := nc.Publish(s, []byte("forged")); err != nil {
				t.Errorf("publish %s: %v", s, err)
			}
		}
		_ = nc.FlushTimeout(3 * time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := strings.Join(violations, "; ")
			mu.Unlock()
			if strings.Contains(got, cmd) && strings.Contains(got, vote) {
				t.Logf("negative control: the proposer's credentials may not publish a command or a vote: %s", got)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("publishing %s and %s with the proposer's credentials: no permissions violation for both (async errors: %q)", cmd, vote, got)
				break
			}
			time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling the async error handler
		}
		nc.Close()
	}

	// Commands must be signed: one published with the coordinators' own NATS
	// credentials (which may publish commands) but unsigned is refused by the shard.
	shard := e.c.Pods(shardSTS)[0]
	rejected := func() (float64, error) { return shardUnsignedRejected(ctx, shard) }
	before, err := rejected()
	if err != nil {
		t.Errorf("shard metrics: %v", err)
	}
	if nc, err := nats.Connect(natsURL, nats.NoReconnect(), nats.Timeout(3*time.Second), nats.Name("e2e-unsigned"),
		nats.UserCredentials(sc.coordinatorCredsFile), nats.CustomInboxPrefix(natsutil.InboxRoot+".coordinator-"+release)); err != nil {
		t.Errorf("NATS with the coordinators' credentials: %v", err)
	} else {
		subj, _ := natsutil.NewSubjects("")
		cmd, _ := subj.ShardCmd(shard.Name())
		if err := nc.Publish(cmd, []byte("unsigned forged command")); err != nil {
			t.Errorf("publish %s: %v", cmd, err)
		}
		if err := nc.FlushTimeout(3 * time.Second); err != nil {
			t.Errorf("flush: %v", err)
		}
		nc.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := rejected()
			if err == nil && n > before {
				t.Logf("negative control: an unsigned command on %s was refused by %s (unsigned rejections %.0f -> %.0f)", cmd, shard.Name(), before, n)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("an unsigned command on %s: %s's unsigned rejections stayed at %.0f (%v)", cmd, shard.Name(), n, err)
				break
			}
			time.Sleep(100 * time.Millisecond) //nolint:forbidigo // polling the shard's metrics
		}
	}

	// Raft: a peer with a certificate of another CA (the admin API's) is refused.
	coord := e.c.Pods(coordSTS)[0]
	if err := raftDialWithCert(coord, sc); err == nil {
		t.Errorf("%s's Raft port took a client certificate of another CA", coord.Name())
	} else {
		t.Logf("negative control: Raft TLS refused a certificate of another CA: %v", err)
	}

	// Plain HTTP on the admin port.
	pod := e.c.Pods(coordSTS)[0]
	plain := &http.Client{Timeout: 3 * time.Second}
	if resp, err := plain.Get("http://" + pod.IP() + ":8080/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP GET /v1/status on %s: 200, want a refusal", pod.Name())
		} else {
			t.Logf("negative control: plain HTTP on the admin port: %s", resp.Status)
		}
	} else {
		t.Logf("negative control: plain HTTP on the admin port: %v", err)
	}

	// Reads need the read token; a mutating call needs the operate token.
	leaderURL, _, err := e.leader(ctx)
	if err != nil {
		t.Errorf("leader: %v", err)
		return
	}
	call := func(method, path, token string) int {
		req, _ := http.NewRequestWithContext(ctx, method, leaderURL+path, strings.NewReader("{}"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, token, who string
		want                     int
	}{
		{http.MethodGet, "/v1/status", "", "no token", http.StatusUnauthorized},
		{http.MethodPost, "/v1/leader/transfer", "", "no token", http.StatusUnauthorized},
		{http.MethodPost, "/v1/leader/transfer", sc.readTok, "the read token", http.StatusForbidden},
	} {
		if got := call(c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s with %s: %d, want %d", c.method, c.path, c.who, got, c.want)
		} else {
			t.Logf("negative control: %s %s with %s: %d", c.method, c.path, c.who, got)
		}
	}
	if _, st, err := e.leader(ctx); err != nil || st.Endpoint != leaderURL {
		t.Errorf("leadership moved after refused transfers: now %v (%v), was %s", st, err, leaderURL)
	}
}

// checkAuditLog reads every coordinator's audit log (on its Raft volume, which the
// rolling restart kept) and wants the preStop hooks' leader transfers in it, made
// with the operate role, and the refused unauthenticated transfer.
func (e *env) checkAuditLog() {
	t := e.t
	t.Helper()
	var transfers, refused int
	for i := range 3 {
		pod := fmt.Sprintf("%s-%d", coordSTS, i)
		path := filepath.Join(e.c.pvcDir("data-"+pod), "audit.log")
		f, err := os.Open(path)
		if err != nil {
			t.Errorf("audit log of %s: %v", pod, err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r admin.AuditRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("audit log of %s: %v: %s", pod, err, sc.Text())
				continue
			}
			if r.Path != "/v1/leader/transfer" {
				continue
			}
			t.Logf("audit %s: %s %s %s role=%s identity=%s remote=%s status=%d", pod, r.Time.Format(time.RFC3339Nano), r.Method, r.Path, r.Role, r.Identity, r.Remote, r.Status)
			switch {
			case r.OK && r.Role == "operate" && strings.HasPrefix(r.Remote, "127.0.0.1"):
				transfers++
			case r.Status == http.StatusUnauthorized:
				refused++
			}
		}
		_ = f.Close()
	}
	if transfers == 0 {
		t.Errorf("no preStop leader transfer (operate role, from 127.0.0.1) in the audit logs")
	}
	if refused == 0 {
		t.Errorf("the refused unauthenticated leader transfer is not in the audit logs")
	}
	t.Logf("audit logs: %d preStop leader transfers, %d refused transfers", transfers, refused)
}

// shardUnsignedRejected reads the unsigned commands a demo shard refused from its
// metrics.
func shardUnsignedRejected(ctx context.Context, p *Pod) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.IP()+":9090/metrics", nil)
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "shardmatch_shard_commands_signature_rejected_total{") && strings.Contains(line, `reason="unsigned"`) {
			var v float64
			_, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			return v, err
		}
	}
	return 0, fmt.Errorf("%s: no unsigned commands_signature_rejected_total in /metrics", p.Name())
}

// raftDialWithCert opens a TLS connection to p's Raft port presenting the admin
// certificate (signed by the admin CA, not the Raft CA) and reads: nil means the
// peer kept the connection open (accepted it).
func raftDialWithCert(p *Pod, sc *secureCreds) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(sc.dir, "admin/admin.pem"), filepath.Join(sc.dir, "admin/admin-key.pem"))
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(sc.dir, "raft/ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("setup: raft CA: %v", err)
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", p.IP()+":7000", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert},
		ServerName: p.Plan.FQDN("cluster.local"), MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// checkSecretFileModes checks the files of every Secret volume of every live pod as
// the kubelet left them: owned by the pod's fsGroup and readable by no one else.
func (e *env) checkSecretFileModes() {
	t := e.t
	t.Helper()
	n := 0
	for _, sts := range []string{natsSTS, coordSTS, shardSTS} {
		for _, p := range e.c.Pods(sts) {
			for _, v := range p.Plan.Volumes {
				if v.Secret == nil {
					continue
				}
				dir := filepath.Join(p.volumeDir(v.Name), dataDirName)
				err := filepath.WalkDir(dir+"/", func(path string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					fi, err := d.Info()
					if err != nil {
						return err
					}
					n++
					gid := int64(-1)
					if st, ok := fi.Sys().(*syscall.Stat_t); ok {
						gid = int64(st.Gid)
					}
					if fi.Mode().Perm()&0o007 != 0 || p.Plan.FSGroup == nil || gid != *p.Plan.FSGroup {
						t.Errorf("%s: Secret volume %s: %s has mode %v gid %d: want readable by the pod's user and fsGroup only",
							p.Name(), v.Name, filepath.Base(path), fi.Mode().Perm(), gid)
					}
					return nil
				})
				if err != nil {
					t.Errorf("%s: Secret volume %s: %v", p.Name(), v.Name, err)
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("no Secret volume files found")
	}
	t.Logf("%d files of Secret volumes: none readable by others", n)
}
