package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestServeConfigPrecedence: flag > SHARDMATCH_* env > config file > default.
func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(file, []byte(`# a node
id = from-file
data = "/file/data"
admin_addr = :9001
prefix = fileprefix   # trailing comment
retention = 3m
stream-replicas = 3
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	o, code, done := parseServeOptions([]string{"--config", file, "--id", "from-flag"}, &stderr, env(map[string]string{
		"SHARDMATCH_DATA":       "/env/data",
		"SHARDMATCH_ADMIN_ADDR": ":9002",
		"SHARDMATCH_ID":         "from-env", // loses to the flag
	}))
	if done {
		t.Fatalf("code %d: %s", code, stderr.String())
	}
	for _, c := range []struct{ name, got, want string }{
		{"id (flag)", o.id, "from-flag"},
		{"data (env over file)", o.data, "/env/data"},
		{"admin-addr (env over file)", o.adminAddr, ":9002"},
		{"prefix (file)", o.prefix, "fileprefix"},
		{"retention (file)", o.retention.String(), "3m0s"},
		{"stream-replicas (file)", fmt.Sprint(o.streamReplicas), "3"},
		{"raft-addr (default)", o.raftAddr, "127.0.0.1:7000"},
		{"log-format (default)", o.logFormat, "json"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	// The config file's path itself comes from the environment too.
	o, _, done = parseServeOptions(nil, &stderr, env(map[string]string{"SHARDMATCH_CONFIG": file}))
	if done || o.id != "from-file" || o.data != "/file/data" {
		t.Errorf("config from SHARDMATCH_CONFIG: done=%v id=%q data=%q: %s", done, o.id, o.data, stderr.String())
	}
}

// TestServeBadSettings: every bad setting is a usage error (exit 2) naming the culprit.
func TestServeBadSettings(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.conf")
	_ = os.WriteFile(badFile, []byte("id = x\nnot-a-flag = 1\n"), 0o644)
	base := []string{"--id", "c1", "--data", dir}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--data", dir}, "--id is required"},
		{[]string{"--id", "c1"}, "--data is required"},
		{append(base, "--bootstrap"), "--bootstrap needs --peers"},
		{append(base, "--peers", "c1"), "not id=host:port"},
		{append(base, "--bootstrap", "--join", "http://x"), "--bootstrap needs --peers"},
		{append(base, "--raft-advertise", "0.0.0.0:7000"), "not dialable"},
		{append(base, "--raft-advertise", "c1.headless.ns.svc:0"), "not dialable"},
		{append(base, "--raft-advertise", "c1.headless.ns.svc"), "missing port"},
		{append(base, "--raft-advertise", "c1.headless.ns.svc:http"), "not a number"},
		{append(base, "--join", "http://x"), "--join needs --admin-token"},
		{append(base, "--raft-addr", "0.0.0.0:7000"), "--raft-advertise"},
		{append(base, "--retention", "fast"), `invalid argument "fast" for "--retention" flag: want a Go duration like 5s or 2m`},
		{append(base, "--log-format", "xml"), "log format"},
		{append(base, "--nats-tls-cert", "c.pem"), "--nats-tls-key"},
		{append(base, "--prefix", "a b"), "--prefix"},
		{append(base, "--raft-tls-cert", "c.pem", "--raft-tls-key", "k.pem"), "all three or none"},
		{append(base, "--raft-tls-ca", "ca.pem"), "all three or none"},
		{[]string{"--config", badFile}, `unknown key "not-a-flag"`},
		{append(base, "extra"), "unexpected argument"},
		{append(base, "--admin-advertise-url", "c1:8080"), "want a base URL"},
		{append(base, "--admin-advertise-url", "ftp://c1:8080"), "want a base URL"},
		{append(base, "--admin-advertise-url", "http://0.0.0.0:8080"), "not reachable"},
		{append(base, "--admin-advertise-url", "http://c1:8080/admin?x=1"), "want a base URL"},
		{append(base, "--memory-limit-ratio", "1.5"), "--memory-limit-ratio"},
		{append(base, "--retention-max", "-1"), "--retention-max (-1)"},
		{append(base, "--snapshot-format", "3"), "--snapshot-format 3: this build writes [2 1]"},
		{append(base, "--memory-limit-ratio", "-0.1"), "--memory-limit-ratio"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runServe(c.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr: %s", c.args, code, stderr.String())
		} else if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q does not mention %q", c.args, stderr.String(), c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runServe([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "(env SHARDMATCH_RAFT_ADDR)") {
		t.Errorf("--help: exit %d, listing lacks env names:\n%s", code, stdout.String())
	}
	if code := runStatus([]string{"--addr", ""}, &stdout, &stderr); code != 2 {
		t.Errorf("status with no address: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"nats", "--addr", "nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("nats with a bad address: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"nats", "--store", ""}, &stdout, &stderr); code != 2 {
		t.Errorf("nats without --store: exit %d, want 2", code)
	}
}

// The advertised admin URL a node derives when none is given.
func TestDefaultAdminURL(t *testing.T) {
	for _, c := range []struct {
		admin, raft string
		tls         bool
		want        string
	}{
		{"127.0.0.1:8081", "127.0.0.1:7001", false, "http://127.0.0.1:8081"},
		{":8080", "c1.headless.ns.svc:7000", true, "https://c1.headless.ns.svc:8080"},
		{"0.0.0.0:8080", "10.0.0.3:7000", false, "http://10.0.0.3:8080"},
		{"[::]:8080", "[fd00::3]:7000", false, "http://[fd00::3]:8080"},
	} {
		if got := defaultAdminURL(c.admin, c.raft, c.tls); got != c.want {
			t.Errorf("defaultAdminURL(%q, %q, %v) = %q, want %q", c.admin, c.raft, c.tls, got, c.want)
		}
		if err := checkAdminURL(c.want); err != nil {
			t.Errorf("checkAdminURL(%q): %v", c.want, err)
		}
	}
}

// TestStatusNoLeader: status exits 1 when no node answers.
func TestStatusNoLeader(t *testing.T) {
	var stdout, stderr bytes.Buffer
	addr := "http://127.0.0.1:" + fmt.Sprint(freePort(t))
	if code := runStatus([]string{"--addr", addr, "--timeout", "2s"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1; out %s err %s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := runStatus([]string{"--addr", addr, "--json", "--timeout", "2s"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stdout.String(), `"error"`) {
		t.Errorf("--json: exit %d, out %s", code, stdout.String())
	}
}

// TestMultiProcessFailover runs a deployment as real processes: NATS, three
// coordinators with static peers, two shards (one driving load). It kills the leader
// with SIGKILL, checks that another takes over and commits continue, restarts the
// killed node and waits until it has caught up, then stops the load and checks that
// no transaction is left unfinished at any node or in doubt at any shard.
func TestMultiProcessFailover(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	d.startCluster(3)
	var statusOut testutil.Buffer
	st := exec.Command(d.coord, "status", "--addr", strings.Join(d.adminURLs(), ","))
	st.Stdout, st.Stderr = &statusOut, &statusOut
	if err := st.Run(); err != nil {
		t.Fatalf("coordinator status: %v\n%s", err, statusOut.String())
	}

	load := []string{"--propose-rate", "30", "--peer-shards", "s2", "--inflight", "8"}
	s1 := d.startShard("s1", load...)
	d.startShard("s2")
	committed := func() (uint64, error) {
		s, err := d.shardStatus("s1")
		if err != nil {
			return 0, err
		}
		if s.Driver == nil {
			return 0, fmt.Errorf("s1 runs no driver")
		}
		return s.Driver.Committed, nil
	}
	commitsPass := func(what string, from uint64, more uint64) uint64 {
		var c uint64
		testutil.WaitFor(t, 20*time.Second, what, func() (err error) {
			if c, err = committed(); err == nil && c < from+more {
				err = fmt.Errorf("%d commits, want %d", c, from+more)
			}
			return err
		})
		return c
	}
	before := commitsPass("commits", 0, 20)

	// kill -9 the leader; another takes over and commits continue.
	li, err := d.leader("")
	if err != nil {
		t.Fatal(err)
	}
	old := d.nodes[li]
	old.kill()
	d.waitLeader(old.id)
	commitsPass("commits after failover", before, 20)

	// Restart the killed node on its data: it catches up with the leader.
	old.start(t)
	ni, _ := d.leader("")
	target := statuses([]string{d.nodes[ni].adminURL})[0].AppliedIndex
	testutil.WaitFor(t, 20*time.Second, old.id+" catching up", func() error {
		s := statuses([]string{old.adminURL})[0]
		if s.Err != nil {
			return s.Err
		}
		if s.AppliedIndex < target {
			return fmt.Errorf("%s applied %d of %d", old.id, s.AppliedIndex, target)
		}
		return nil
	})

	// Stop the load (s1 drains gracefully), restart s1 without it on its journal, and
	// wait until everything settles.
	if code := s1.stop(t, 20*time.Second); code != 0 {
		t.Errorf("s1 exit code %d after SIGTERM", code)
	}
	s1.args = d.shardArgs("s1", s1.url)
	s1.start(t)
	d.waitSettled(30 * time.Second)
	for _, n := range d.nodes {
		if code := n.stop(t, 20*time.Second); code != 0 {
			t.Errorf("%s exit code %d after SIGTERM", n.id, code)
		}
	}
}
