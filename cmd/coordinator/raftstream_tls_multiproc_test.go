package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/pki"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestMultiProcessRaftTLS runs three `coordinator serve` processes with
// --raft-tls-* (c3 through SHARDMATCH_RAFT_TLS_* instead of flags): they elect a
// leader, the load driver's matches commit, and every node applies the same log. A
// client without a certificate is refused by a node's Raft port, which logs the
// refusal; no member is ever refused.
func TestMultiProcessRaftTLS(t *testing.T) {
	testutil.Exclusive(t, testutil.HeavyProcesses)
	d := newDeployment(t)
	set, err := pki.WriteSet(d.dir+"/pki", []string{"127.0.0.1"}, "c1", "c2", "c3")
	if err != nil {
		t.Fatal(err)
	}
	d.startNATS()
	var peers []string
	ports := make([]int, 3)
	for i := range ports {
		ports[i] = freePort(t)
		peers = append(peers, fmt.Sprintf("c%d=127.0.0.1:%d", i+1, ports[i]))
	}
	for i := range ports {
		id := fmt.Sprintf("c%d", i+1)
		c := set.Certs[id]
		args := []string{"--peers", strings.Join(peers, ","), "--bootstrap", "--no-policy"}
		if id == "c3" {
			d.nodeEnv = []string{"SHARDMATCH_RAFT_TLS_CERT=" + c.CertFile, "SHARDMATCH_RAFT_TLS_KEY=" + c.KeyFile, "SHARDMATCH_RAFT_TLS_CA=" + set.CAFile}
		} else {
			args = append(args, "--raft-tls-cert", c.CertFile, "--raft-tls-key", c.KeyFile, "--raft-tls-ca", set.CAFile)
		}
		d.startNode(id, ports[i], args...)
	}
	d.nodeEnv = nil
	d.waitLeader("")
	d.startShard("s1", "--propose-rate", "20", "--peer-shards", "s2")
	d.startShard("s2")
	d.waitRegistered("s1", "s2")
	testutil.WaitFor(t, 60*time.Second, "matches to commit over Raft with mutual TLS", func() error {
		s, err := d.shardStatus("s1")
		if err != nil {
			return err
		}
		if s.Driver == nil || s.Driver.Committed < 5 {
			return fmt.Errorf("driver %+v", s.Driver)
		}
		return nil
	})
	testutil.WaitFor(t, 30*time.Second, "every node to apply the same log", func() error {
		sts := statuses(d.adminURLs())
		for _, st := range sts {
			if st.Err != nil {
				return st.Err
			}
			if st.AppliedIndex < 5 || st.AppliedIndex != sts[0].AppliedIndex || st.FSMAppliedIndex != sts[0].FSMAppliedIndex {
				return fmt.Errorf("%s applied %d (fsm %d), %s applied %d", st.NodeID, st.AppliedIndex, st.FSMAppliedIndex, sts[0].NodeID, sts[0].AppliedIndex)
			}
		}
		return nil
	})

	c, err := tls.Dial("tcp", d.nodes[0].raftAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("a client without a certificate: %v, want a certificate-required alert", err)
	}
	testutil.WaitFor(t, 10*time.Second, "c1 to log the refusal", func() error {
		if !strings.Contains(d.nodes[0].proc.out.String(), "raft peer refused") {
			return fmt.Errorf("c1's log has no refusal")
		}
		return nil
	})
	for _, n := range d.nodes {
		if got := strings.Count(n.proc.out.String(), "raft peer refused"); (n == d.nodes[0]) != (got > 0) || got > 1 {
			t.Errorf("%s logged %d refusals:\n%s", n.id, got, n.proc.out.String())
		}
	}
}

// TestTLSCertsCommand: tls-certs writes a CA and per-name certificates a node loads
// as its --raft-tls-* files, keys 0600, and refuses to overwrite a directory's CA.
func TestTLSCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, stdout, stderr := runCmd(t, "tls-certs", "--out", dir, "--hosts", "127.0.0.1,*.coord.ns.svc", "--names", "c1,c2")
	if code != 0 || strings.Count(stdout, "\n") != 6 {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	for _, k := range []string{"ca-key.pem", "c1-key.pem", "c2-key.pem"} {
		if st, err := os.Stat(filepath.Join(dir, k)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", k, st, err)
		}
	}
	r, err := newTLSReloader(raftTLSFiles{filepath.Join(dir, "c1.pem"), filepath.Join(dir, "c1-key.pem"), filepath.Join(dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cert, pool := r.current()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "c2.coord.ns.svc"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"tls-certs", "--out", dir, "--hosts", "x"}, 1, "refusing to overwrite"},
		{[]string{"tls-certs", "--out", dir}, 2, "--hosts"},
		{[]string{"tls-certs", "--help"}, 0, "--raft-tls-ca"},
		{[]string{"help"}, 0, "tls-certs"},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.in) {
			t.Errorf("%v: exit %d, want %d with %q in:\n%s%s", c.args, code, c.code, c.in, stdout, stderr)
		}
	}
}
