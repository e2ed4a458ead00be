package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// testSubcommandEnv makes the test binary act as `coordinator <subcommand>`, for the
// multi-process test while main.go does not dispatch to serve, status and nats yet.
const testSubcommandEnv = "SHARDMATCH_TEST_SUBCOMMAND"

func init() {
	if sub := os.Getenv(testSubcommandEnv); sub != "" {
		fns := map[string]func([]string, io.Writer, io.Writer) int{"serve": runServe, "status": runStatus, "nats": runNats}
		fn, ok := fns[sub]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test subcommand %q\n", sub)
			os.Exit(2)
		}
		args := os.Args[1:]
		if len(args) > 0 && args[0] == sub { // invoked like the real binary
			args = args[1:]
		}
		os.Exit(fn(args, os.Stdout, os.Stderr))
	}
}

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
		{append(base, "--peers", "c2=127.0.0.1:1", "--bootstrap", "--join", "http://x"), "exclude each other"},
		{append(base, "--join", "http://x"), "--join needs --admin-token"},
		{append(base, "--raft-addr", "0.0.0.0:7000"), "--raft-advertise"},
		{append(base, "--retention", "fast"), "invalid value"},
		{append(base, "--log-format", "xml"), "log format"},
		{append(base, "--nats-tls-cert", "c.pem"), "--nats-tls-key"},
		{append(base, "--prefix", "a b"), "--prefix"},
		{[]string{"--config", badFile}, `unknown key "not-a-flag"`},
		{append(base, "extra"), "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runServe(c.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr: %s", c.args, code, stderr.String())
		} else if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q does not mention %q", c.args, stderr.String(), c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runServe([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "SHARDMATCH_RAFT_ADDR") {
		t.Errorf("--help: exit %d, listing lacks env names:\n%s", code, stderr.String())
	}
	if code := runStatus([]string{"--addr", ""}, &stdout, &stderr); code != 2 {
		t.Errorf("status with no address: exit %d, want 2", code)
	}
	if code := runNats([]string{"--addr", "nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("nats with a bad address: exit %d, want 2", code)
	}
	if code := runNats([]string{"--store", ""}, &stdout, &stderr); code != 2 {
		t.Errorf("nats without --store: exit %d, want 2", code)
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuf is a goroutine-safe output buffer for a child process.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is one child process of the multi-process test.
type proc struct {
	name string
	bin  string
	env  []string
	args []string
	out  *syncBuf
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	if p.out == nil {
		p.out = &syncBuf{}
	}
	fmt.Fprintf(p.out, "=== start %s %s\n", p.name, strings.Join(p.args, " "))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and waits for a graceful exit; it reports the exit code.
func (p *proc) stop(t *testing.T, within time.Duration) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		p.kill()
		t.Errorf("%s did not stop within %s after SIGTERM", p.name, within)
		return -1
	}
}

// waitFor polls fn until it returns nil, failing the test with fn's last error after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getJSON fetches url into v.
func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// statuses fetches every node's /v1/status.
func statuses(urls []string) []*admin.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return (&admin.StatusClient{}).FetchAll(ctx, urls)
}

// buildBinaries builds cmd/shardsvc and cmd/coordinator into dir. The coordinator
// binary is used if it dispatches `serve`; until main.go does, the test binary plays
// the coordinator (testSubcommandEnv).
func buildBinaries(t *testing.T, dir string) (coord func(sub string) (bin string, env []string), shard string) {
	t.Helper()
	shard = filepath.Join(dir, "shardsvc")
	coordBin := filepath.Join(dir, "coordinator")
	for bin, pkg := range map[string]string{shard: "github.com/shardmatch/shardmatch/cmd/shardsvc",
		coordBin: "github.com/shardmatch/shardmatch/cmd/coordinator"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	if exec.Command(coordBin, "serve", "--help").Run() == nil {
		return func(sub string) (string, []string) { return coordBin, nil }, shard
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Log("coordinator binary does not dispatch serve yet: the test binary runs the coordinator processes")
	return func(sub string) (string, []string) { return self, []string{testSubcommandEnv + "=" + sub} }, shard
}

// shardStatus is the part of shardsvc's /status the test reads.
type shardStatus struct {
	InDoubt []string `json:"in_doubt"`
	Driver  *struct {
		Committed uint64
	} `json:"driver"`
}

// TestMultiProcessFailover runs a deployment as real processes: NATS, three
// coordinators with static peers, two shards (one driving load). It kills the leader
// with SIGKILL, checks that another takes over and commits continue, restarts the
// killed node and waits until it has caught up, then stops the load and checks that
// no transaction is left unfinished at any node or in doubt at any shard.
func TestMultiProcessFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds binaries and runs 6 processes")
	}
	dir := t.TempDir()
	coordCmd, shardBin := buildBinaries(t, dir)
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("---- %s output:\n%s", p.name, p.out.String())
			}
		}
	})
	add := func(p *proc) *proc { procs = append(procs, p); p.start(t); return p }

	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	bin, env := coordCmd("nats")
	add(&proc{name: "nats", bin: bin, env: env, args: []string{"nats", "--addr", strings.TrimPrefix(natsURL, "nats://"),
		"--store", filepath.Join(dir, "nats")}})

	const n = 3
	var peers, adminURLs []string
	raftPorts, adminPorts := make([]int, n), make([]int, n)
	for i := range n {
		raftPorts[i], adminPorts[i] = freePort(t), freePort(t)
		peers = append(peers, fmt.Sprintf("c%d=127.0.0.1:%d", i+1, raftPorts[i]))
		adminURLs = append(adminURLs, fmt.Sprintf("http://127.0.0.1:%d", adminPorts[i]))
	}
	nodes := make([]*proc, n)
	bin, env = coordCmd("serve")
	for i := range n {
		nodes[i] = add(&proc{name: fmt.Sprintf("c%d", i+1), bin: bin, env: append(env, "SHARDMATCH_ADMIN_TOKEN=secret"),
			args: []string{"serve", "--id", fmt.Sprintf("c%d", i+1), "--data", filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
				"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftPorts[i]), "--peers", strings.Join(peers, ","), "--bootstrap",
				"--nats-url", natsURL, "--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPorts[i]),
				"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--prepare-timeout", "2s",
				"--log-level", "warn"}})
	}
	leader := func(exclude string) (int, error) {
		for i, st := range statuses(adminURLs) {
			if st.Err == nil && st.Leading && st.NodeID != exclude {
				return i, nil
			}
		}
		return -1, fmt.Errorf("no leader serving (excluding %q)", exclude)
	}
	waitFor(t, 30*time.Second, "a leader", func() error { _, err := leader(""); return err })
	bin, env = coordCmd("status")
	var statusOut syncBuf
	st := exec.Command(bin, "status", "--addr", strings.Join(adminURLs, ","))
	st.Env, st.Stdout, st.Stderr = append(os.Environ(), env...), &statusOut, &statusOut
	if err := st.Run(); err != nil {
		t.Fatalf("coordinator status: %v\n%s", err, statusOut.String())
	}

	shardURL := map[string]string{}
	shardProc := map[string]*proc{}
	shardArgs := func(id string, load bool) []string {
		a := []string{"--id", id, "--nats-url", natsURL, "--journal", filepath.Join(dir, id+".journal"), "--players", "300",
			"--admin-addr", strings.TrimPrefix(shardURL[id], "http://"), "--log-level", "warn", "--match-ttl", "2s"}
		if load {
			a = append(a, "--propose-rate", "30", "--peer-shards", "s2", "--inflight", "8")
		}
		return a
	}
	for _, id := range []string{"s1", "s2"} {
		shardURL[id] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		shardProc[id] = add(&proc{name: id, bin: shardBin, args: shardArgs(id, id == "s1")})
	}
	committed := func() (uint64, error) {
		var s shardStatus
		if err := getJSON(shardURL["s1"]+"/status", &s); err != nil {
			return 0, err
		}
		if s.Driver == nil {
			return 0, fmt.Errorf("s1 runs no driver")
		}
		return s.Driver.Committed, nil
	}
	commitsPass := func(what string, from uint64, more uint64) uint64 {
		var c uint64
		waitFor(t, 20*time.Second, what, func() (err error) {
			if c, err = committed(); err == nil && c < from+more {
				err = fmt.Errorf("%d commits, want %d", c, from+more)
			}
			return err
		})
		return c
	}
	before := commitsPass("commits", 0, 20)

	// kill -9 the leader; another takes over and commits continue.
	li, err := leader("")
	if err != nil {
		t.Fatal(err)
	}
	old := nodes[li].name
	nodes[li].kill()
	waitFor(t, 20*time.Second, "a new leader", func() error { _, err := leader(old); return err })
	commitsPass("commits after failover", before, 20)

	// Restart the killed node on its data: it catches up with the leader.
	nodes[li].start(t)
	ni, _ := leader("")
	target := statuses(adminURLs[ni : ni+1])[0].AppliedIndex
	waitFor(t, 20*time.Second, old+" catching up", func() error {
		s := statuses(adminURLs[li : li+1])[0]
		if s.Err != nil {
			return s.Err
		}
		if s.AppliedIndex < target {
			return fmt.Errorf("%s applied %d of %d", old, s.AppliedIndex, target)
		}
		return nil
	})

	// Stop the load (s1 drains gracefully), restart s1 without it on its journal, and
	// wait until everything settles.
	if code := shardProc["s1"].stop(t, 20*time.Second); code != 0 {
		t.Errorf("s1 exit code %d after SIGTERM", code)
	}
	shardProc["s1"].args = shardArgs("s1", false)
	shardProc["s1"].start(t)
	waitFor(t, 30*time.Second, "no unfinished transactions and nothing in doubt", func() error {
		for _, s := range statuses(adminURLs) {
			if s.Err != nil {
				return s.Err
			}
			if s.Counts.Preparing+s.Counts.Undelivered > 0 {
				return fmt.Errorf("%s: %d preparing, %d undelivered", s.NodeID, s.Counts.Preparing, s.Counts.Undelivered)
			}
		}
		for id, u := range shardURL {
			var s shardStatus
			if err := getJSON(u+"/status", &s); err != nil {
				return err
			}
			if len(s.InDoubt) > 0 {
				return fmt.Errorf("%s holds %d transactions in doubt", id, len(s.InDoubt))
			}
		}
		return nil
	})
	for _, p := range nodes {
		if code := p.stop(t, 20*time.Second); code != 0 {
			t.Errorf("%s exit code %d after SIGTERM", p.name, code)
		}
	}
}
