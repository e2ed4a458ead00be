package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

// TestWriteSet: the files are where Set says, keys are 0600, and a node certificate
// verifies against the CA for its IP and DNS SANs, as a server and as a client, and
// not for another host.
func TestWriteSet(t *testing.T) {
	dir := t.TempDir()
	s, err := WriteSet(dir, []string{"127.0.0.1", "coord-0.coord"}, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{s.CAKeyFile, s.Certs["n1"].KeyFile, s.Certs["n2"].KeyFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	pair, err := tls.LoadX509KeyPair(s.Certs["n1"].CertFile, s.Certs["n1"].KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	for _, host := range []string{"127.0.0.1", "coord-0.coord"} {
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("host %s usage %v: %v", host, u, err)
			}
		}
	}
	var he x509.HostnameError
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "10.0.0.9", Roots: pool}); !errors.As(err, &he) {
		t.Errorf("another host verified: %v", err)
	}
	ca, err := LoadCA(s.CAFile, s.CAKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	more, err := ca.Issue(LeafOptions{Hosts: []string{"::1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := more.Cert.Verify(x509.VerifyOptions{DNSName: "::1", Roots: pool}); err != nil {
		t.Errorf("certificate from the loaded CA: %v", err)
	}
}

// TestIssueValidityAndUsage: an explicit window is kept (an expired certificate
// fails verification) and ServerOnly drops client authentication.
func TestIssueValidityAndUsage(t *testing.T) {
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	old, err := ca.Issue(LeafOptions{Hosts: []string{"a"}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var inv x509.CertificateInvalidError
	if _, err := old.Cert.Verify(x509.VerifyOptions{DNSName: "a", Roots: pool}); !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Errorf("expired certificate: %v", err)
	}
	srv, err := ca.Issue(LeafOptions{Hosts: []string{"a"}, ServerOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "a", Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a ServerOnly certificate verified for client authentication")
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "a", Roots: pool}); err != nil {
		t.Errorf("ServerOnly certificate as a server: %v", err)
	}
}
