package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/config/tlstest"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
)

// serveTLS serves h over TLS (cfg) with the per-client connection cap on a loopback
// port and returns its https base URL and the cap's listener.
func serveTLS(t *testing.T, h http.Handler, cfg ServerTLSConfig, maxConns int) (string, *ConnLimitListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitConnsPerClient(ln, maxConns)
	var served net.Listener = lim
	scheme := "http"
	if cfg.CertFile != "" {
		tc, err := ServerTLS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		served, scheme = tls.NewListener(lim, tc), "https"
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(served) }()
	t.Cleanup(func() { _ = srv.Close() })
	return scheme + "://" + ln.Addr().String(), lim
}

// get is one request on a fresh connection (a new handshake each time).
func get(t *testing.T, caFile string, cert *tls.Certificate, method, url, token, body string) (int, string, error) {
	t.Helper()
	hc, err := NewHTTPClient(caFile, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tr := hc.Transport.(*http.Transport)
	tr.DisableKeepAlives = true
	if cert != nil {
		// Sent whatever CAs the server asks for, so a foreign one reaches the check.
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", ExplainTLS(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestTLSAndRotation: the admin API over HTTPS; a client trusting the CA reads it, one
// that does not is told to check --admin-ca; replacing the certificate files is served
// at the next handshake without a restart.
func TestTLSAndRotation(t *testing.T) {
	dir := t.TempDir()
	p1, err := tlstest.New(dir, "one")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := tlstest.New(dir, "two")
	if err != nil {
		t.Fatal(err)
	}
	// The served files: copies, so the test can replace them.
	certFile, keyFile := dir+"/served.pem", dir+"/served-key.pem"
	copyFile(t, p1.ServerCertFile, certFile)
	copyFile(t, p1.ServerKeyFile, keyFile)
	sf := newSecFixture(t, nil)
	base, _ := serveTLS(t, sf.h, ServerTLSConfig{CertFile: certFile, KeyFile: keyFile}, 0)

	if code, body, err := get(t, p1.CAFile, nil, "GET", base+"/v1/status", readTok, ""); err != nil || code != 200 {
		t.Fatalf("status over TLS: %d %s %v", code, body, err)
	}
	if _, _, err := get(t, p2.CAFile, nil, "GET", base+"/healthz", "", ""); err == nil || !strings.Contains(err.Error(), "--admin-ca") {
		t.Fatalf("a client trusting another CA: %v (want an error naming --admin-ca)", err)
	}
	if _, _, err := get(t, p1.CAFile, nil, "GET", strings.Replace(base, "https", "http", 1)+"/healthz", "", ""); err != nil {
		t.Fatal(err) // plain HTTP to HTTPS: a 400 answer, not an error; StatusClient explains it
	}
	_, err = (&StatusClient{}).Fetch(context.Background(), strings.Replace(base, "https", "http", 1))
	if err == nil || !strings.Contains(err.Error(), "https://") {
		t.Fatalf("plain HTTP to the HTTPS API: %v", err)
	}

	// Rotate to a certificate from CA two: served without a restart.
	copyFile(t, p2.ServerKeyFile, keyFile)
	copyFile(t, p2.ServerCertFile, certFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, err := get(t, p2.CAFile, nil, "GET", base+"/healthz", "", "")
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate is not served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := get(t, p1.CAFile, nil, "GET", base+"/healthz", "", ""); err == nil {
		t.Fatal("the old certificate is still served after rotation")
	}
	// A broken replacement keeps the current certificate.
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, p2.CAFile, nil, "GET", base+"/healthz", "", ""); err != nil || code != 200 {
		t.Fatalf("after a broken rotation: %d %v", code, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil { // atomic, like the kubelet's swap
		t.Fatal(err)
	}
}

// TestClientCertificates: with a client CA, a verified client certificate is an
// operate identity (audited as cert:CN=...), while the probes and /metrics stay
// reachable with neither certificate nor token, and a certificate from another CA is
// refused at the handshake.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	p, err := tlstest.New(dir, "adm")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlstest.New(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	sf := newSecFixture(t, nil)
	base, _ := serveTLS(t, sf.h, ServerTLSConfig{CertFile: p.ServerCertFile, KeyFile: p.ServerKeyFile, ClientCAFile: p.CAFile}, 0)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body, err := get(t, p.CAFile, nil, "GET", base+path, "", ""); err != nil || code != 200 {
			t.Errorf("%s without certificate or token: %d %v %.80s", path, code, err, body)
		}
	}
	// Negative control: the same action without a certificate is refused.
	if code, _, err := get(t, p.CAFile, nil, "POST", base+"/v1/voters", "", `{"id":"c4","addr":"c4:7000"}`); err != nil || code != 401 {
		t.Fatalf("no certificate, no token: %d %v", code, err)
	}
	cert, err := tls.LoadX509KeyPair(p.ClientCertFile, p.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := get(t, p.CAFile, &cert, "POST", base+"/v1/voters", "", `{"id":"c4","addr":"c4:7000"}`); err != nil || code != 200 {
		t.Fatalf("verified client certificate: %d %s %v", code, body, err)
	}
	recs := sf.fileRecords(t)
	if last := recs[len(recs)-1]; last.Identity != "cert:CN=adm-client" || last.Role != "operate" || !last.OK {
		t.Fatalf("audit of the certificate call: %+v", last)
	}
	bad, err := tls.LoadX509KeyPair(other.ClientCertFile, other.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, p.CAFile, &bad, "POST", base+"/v1/voters", "", `{"id":"c5","addr":"c5:7000"}`); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
}

// TestConnsPerClient: a client over its cap has its connection closed at once; the
// connections within the cap are served; a freed slot is usable again.
func TestConnsPerClient(t *testing.T) {
	sf := newSecFixture(t, nil)
	base, lim := serveTLS(t, sf.h, ServerTLSConfig{}, 2)
	addr := strings.TrimPrefix(base, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// roundTrip sends one request on c and reports whether an HTTP answer came.
	roundTrip := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		buf := make([]byte, 12)
		n, err := io.ReadFull(c, buf)
		return err == nil && n == 12 && strings.HasPrefix(string(buf), "HTTP/1.1 200")
	}
	c1, c2 := dial(), dial()
	if !roundTrip(c1) || !roundTrip(c2) {
		t.Fatal("connections within the cap were not served")
	}
	c3 := dial()
	if roundTrip(c3) {
		t.Fatal("a third connection from the same client was served")
	}
	if lim.Refused() == 0 {
		t.Fatal("the refusal was not counted")
	}
	_ = c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for lim.Open("127.0.0.1") > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !roundTrip(dial()) {
		t.Fatal("a freed slot was not usable again")
	}
}

// TestAuditEventOnNATS: the audit record reaches a real NATS server on
// <prefix>.v1.events.audit, where stream SM_EVENTS captures it.
func TestAuditEventOnNATS(t *testing.T) {
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := natsutil.MustSubjects("sm").EventsAudit()
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuditor(AuditConfig{Publisher: nc, Subject: subj})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f := newFixture(t, func(c *Config, n *fakeNode) Node { c.Audit = a; return n })
	f.do("POST", "/v1/leader/transfer", "", "")
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no audit event on %s: %v", subj, err)
	}
	var rec AuditRecord
	if err := json.Unmarshal(msg.Data, &rec); err != nil || rec.Status != 401 || rec.Path != "/v1/leader/transfer" {
		t.Fatalf("event %s: %v", msg.Data, err)
	}
	if !strings.HasSuffix(subj, ".v1.events.audit") {
		t.Fatalf("subject %s", subj)
	}
}
