package main

// The multi-process test harness: a deployment of real processes (`coordinator nats`,
// `coordinator serve` nodes, `shardsvc` shards) built from this module, with helpers
// to start, kill, restart and inspect them. Shared by serve_test.go and the
// serve_*_test.go files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
)

// adminToken is the admin bearer token of every node the harness starts.
const adminToken = "secret"

// freePort is a port for a child process to listen on (see testutil.FreePort for
// why not one from net.Listen(":0")).
func freePort(t *testing.T) int { t.Helper(); return testutil.FreePort(t) }

// proc is one child process; start it again after it exited to restart it with the
// same arguments.
type proc struct {
	name string
	bin  string
	env  []string
	args []string
	out  *testutil.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	if p.out == nil {
		p.out = &testutil.Buffer{}
	}
	fmt.Fprintf(p.out, "=== start %s %s\n", p.name, strings.Join(p.args, " "))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
}

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	if p.running() {
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

// wait waits for the process to exit by itself and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		p.kill()
		t.Fatalf("%s still running after %s", p.name, within)
		return -1
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

// getText fetches url as text (a /metrics page).
func getText(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b.String(), nil
}

// statuses fetches every node's /v1/status.
func statuses(urls []string) []*admin.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return (&admin.StatusClient{}).FetchAll(ctx, urls)
}

// binaries are cmd/coordinator and cmd/shardsvc, built once per test process
// (without -race: the processes under test run at full speed) into binDir, which
// TestMain removes.
var (
	binOnce             sync.Once
	coordBin, shardBin  string
	binErr              error
	removeBuiltBinaries = func() {}
)

// binaries returns the coordinator and shardsvc binaries, building them on first use.
func binaries(t *testing.T) (coord, shard string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, err := os.MkdirTemp("", "shardmatch-bin-")
		if binErr = err; err != nil {
			return
		}
		removeBuiltBinaries = func() { _ = os.RemoveAll(binDir) }
		coordBin, shardBin = filepath.Join(binDir, "coordinator"), filepath.Join(binDir, "shardsvc")
		for bin, pkg := range map[string]string{shardBin: "github.com/shardmatch/shardmatch/cmd/shardsvc",
			coordBin: "github.com/shardmatch/shardmatch/cmd/coordinator"} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return coordBin, shardBin
}

// shardStatus is the part of shardsvc's /status the tests read.
type shardStatus struct {
	InDoubt     []string `json:"in_doubt"`
	Participant struct {
		Prepares, VotesYes, VotesNo, Commits, Aborts, Duplicates, Anomalies uint64
	} `json:"participant"`
	Transport *struct {
		Received, Handled, Malformed, WrongShard, Rejected uint64
	} `json:"transport"`
	Driver *struct {
		Committed uint64
	} `json:"driver"`
}

// coordNode is one `coordinator serve` process.
type coordNode struct {
	*proc
	id, raftAddr, adminURL string
}

// shardProc is one `shardsvc` process.
type shardProc struct {
	*proc
	id, url string
}

// deployment is a set of real processes on loopback: NATS, coordinators, shards.
// Everything it starts is killed at cleanup, and every process's output is logged
// if the test failed.
type deployment struct {
	t        *testing.T
	dir      string
	coord    string // coordinator binary
	shard    string // shardsvc binary
	natsURL  string
	nats     *proc
	nodes    []*coordNode
	shards   map[string]*shardProc
	procs    []*proc
	natsConf config.NATS // how the test itself connects
	// nodeEnv and shardEnv are added to the environment of every node and shard
	// started after they are set (secrets, say).
	nodeEnv, shardEnv []string
}

// newDeployment builds the binaries and prepares an empty deployment.
func newDeployment(t *testing.T) *deployment {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test: builds binaries and runs several processes")
	}
	d := &deployment{t: t, dir: t.TempDir(), shards: map[string]*shardProc{}}
	d.coord, d.shard = binaries(t)
	t.Cleanup(func() {
		for _, p := range d.procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range d.procs {
				t.Logf("---- %s output:\n%s", p.name, p.out.String())
			}
		}
	})
	return d
}

func (d *deployment) add(p *proc) *proc {
	d.procs = append(d.procs, p)
	p.start(d.t)
	return p
}

// startNATS runs `coordinator nats` on a free port with its store in the test's
// directory; restart it with d.nats.start (same port, same store).
func (d *deployment) startNATS() {
	d.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(d.t))
	d.natsURL = "nats://" + addr
	d.natsConf = config.NATS{URL: d.natsURL}
	d.nats = d.add(&proc{name: "nats", bin: d.coord, args: []string{"nats", "--addr", addr,
		"--store", filepath.Join(d.dir, "nats")}})
}

// nodeArgs are the settings of node id beyond identity and addresses.
func (d *deployment) nodeArgs(id string, raftPort, adminPort int, extra ...string) []string {
	return append([]string{"serve", "--id", id, "--data", filepath.Join(d.dir, id),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftPort), "--nats-url", d.natsURL,
		"--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--prepare-timeout", "2s",
		"--log-level", "warn"}, extra...)
}

// startNode runs one `coordinator serve` with extra settings (--peers and
// --bootstrap, or --join).
func (d *deployment) startNode(id string, raftPort int, extra ...string) *coordNode {
	d.t.Helper()
	return d.startNodeAt(id, raftPort, freePort(d.t), extra...)
}

// startNodeAt is startNode on a given admin port.
func (d *deployment) startNodeAt(id string, raftPort, adminPort int, extra ...string) *coordNode {
	d.t.Helper()
	n := &coordNode{id: id, raftAddr: fmt.Sprintf("127.0.0.1:%d", raftPort), adminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
	n.proc = d.add(&proc{name: id, bin: d.coord, env: append([]string{"SHARDMATCH_ADMIN_TOKEN=" + adminToken}, d.nodeEnv...),
		args: d.nodeArgs(id, raftPort, adminPort, extra...)})
	d.nodes = append(d.nodes, n)
	return n
}

// startCluster runs n nodes c1..cn with static peers, --bootstrap and extra
// settings, and waits for a leader.
func (d *deployment) startCluster(n int, extra ...string) {
	d.t.Helper()
	var peers []string
	ports := make([]int, n)
	for i := range n {
		ports[i] = freePort(d.t)
		peers = append(peers, fmt.Sprintf("c%d=127.0.0.1:%d", i+1, ports[i]))
	}
	for i := range n {
		d.startNode(fmt.Sprintf("c%d", i+1), ports[i], append([]string{"--peers", strings.Join(peers, ","), "--bootstrap"}, extra...)...)
	}
	d.waitLeader("")
}

func (d *deployment) adminURLs() []string {
	var out []string
	for _, n := range d.nodes {
		out = append(out, n.adminURL)
	}
	return out
}

// leader returns the index of a node that says it leads, other than exclude.
func (d *deployment) leader(exclude string) (int, error) {
	for i, st := range statuses(d.adminURLs()) {
		if st.Err == nil && st.Leading && st.NodeID != exclude {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no leader serving (excluding %q)", exclude)
}

func (d *deployment) waitLeader(exclude string) int {
	d.t.Helper()
	i := -1
	testutil.WaitFor(d.t, 30*time.Second, "a leader", func() (err error) { i, err = d.leader(exclude); return err })
	return i
}

// shardArgs are a shard's settings: its journal in the test's directory, 300
// players, seed 1, and extra (a load driver, say).
func (d *deployment) shardArgs(id, url string, extra ...string) []string {
	return append([]string{"--id", id, "--nats-url", d.natsURL, "--journal", filepath.Join(d.dir, id+".journal"),
		"--players", "300", "--admin-addr", strings.TrimPrefix(url, "http://"), "--log-level", "warn",
		"--match-ttl", "2s"}, extra...)
}

// startShard runs one shardsvc.
func (d *deployment) startShard(id string, extra ...string) *shardProc {
	d.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(d.t))
	s := &shardProc{id: id, url: url}
	s.proc = d.add(&proc{name: id, bin: d.shard, env: d.shardEnv, args: d.shardArgs(id, url, extra...)})
	d.shards[id] = s
	return s
}

func (d *deployment) shardStatus(id string) (shardStatus, error) {
	var s shardStatus
	err := getJSON(d.shards[id].url+"/status", &s)
	return s, err
}

// waitRegistered waits until the leader's registry holds every shard.
func (d *deployment) waitRegistered(ids ...string) {
	d.t.Helper()
	testutil.WaitFor(d.t, 30*time.Second, "shards registered", func() error {
		i, err := d.leader("")
		if err != nil {
			return err
		}
		st := statuses(d.adminURLs()[i : i+1])[0]
		if st.Err != nil {
			return st.Err
		}
		if st.Counts.Shards < len(ids) {
			return fmt.Errorf("%d shards registered, want %d", st.Counts.Shards, len(ids))
		}
		return nil
	})
}

// waitSettled waits until no running node holds an unfinished transaction and no
// shard holds one in doubt.
func (d *deployment) waitSettled(timeout time.Duration) {
	d.t.Helper()
	testutil.WaitFor(d.t, timeout, "no unfinished transactions and nothing in doubt", func() error {
		for _, n := range d.nodes {
			if !n.running() {
				continue
			}
			s := statuses([]string{n.adminURL})[0]
			if s.Err != nil {
				return s.Err
			}
			if s.Counts.Preparing+s.Counts.Undelivered > 0 {
				return fmt.Errorf("%s: %d preparing, %d undelivered", s.NodeID, s.Counts.Preparing, s.Counts.Undelivered)
			}
		}
		for id := range d.shards {
			s, err := d.shardStatus(id)
			if err != nil {
				return err
			}
			if len(s.InDoubt) > 0 {
				return fmt.Errorf("%s holds %d transactions in doubt", id, len(s.InDoubt))
			}
		}
		return nil
	})
}

// connect opens the test's own NATS connection, configured as the binaries
// configure theirs (reconnecting forever).
func (d *deployment) connect() *nats.Conn {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := d.natsConf.Connect(ctx, "test-"+d.t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	return nc
}

// client is a proposer SDK on a connection of the test's own.
func (d *deployment) client(cfg client.Config) *client.Client {
	d.t.Helper()
	cfg.Conn = d.connect()
	c, err := client.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = c.Close() })
	return c
}

// metricSum adds up the samples of name in a Prometheus text page whose series
// carries every k="v" pair of labels.
func metricSum(text, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series, val := line[:i], line[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for j := 0; j+1 < len(labels); j += 2 {
			ok = ok && strings.Contains(series, labels[j]+`="`+labels[j+1]+`"`)
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); ok && err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// journalStates maps the state names of GET /v1/journal back to journal states.
var journalStates = map[string]twophase.JournalState{}

func init() {
	for _, st := range []twophase.JournalState{twophase.JournalPrepared, twophase.JournalVotedNo,
		twophase.JournalCommitted, twophase.JournalAborted} {
		journalStates[st.String()] = st
	}
}

// auditClean reads every running node's FSM state (GET /v1/debug/state) and every
// shard's journal (GET /v1/journal), runs shardsvc.Audit over them and fails the test
// unless it is clean. It returns the nodes' states by node id.
func (d *deployment) auditClean() map[string]*smv1.FSMState {
	d.t.Helper()
	in := shardsvc.AuditInput{}
	states := map[string]*smv1.FSMState{}
	for _, n := range d.nodes {
		if !n.running() {
			continue
		}
		body, err := getText(n.adminURL + admin.PathDebugState)
		if err != nil {
			d.t.Fatal(err)
		}
		st := new(smv1.FSMState)
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(body), st); err != nil {
			d.t.Fatalf("%s state: %v", n.id, err)
		}
		states[n.id] = st
		in.Nodes = append(in.Nodes, shardsvc.NodeView{ID: n.id, State: st})
	}
	for id, s := range d.shards {
		var j collect.Journal
		if err := getJSON(s.url+collect.JournalPath, &j); err != nil {
			d.t.Fatal(err)
		}
		view := shardsvc.ShardView{ID: id}
		for _, r := range j.Entries {
			st, ok := journalStates[r.State]
			if !ok {
				d.t.Fatalf("%s journal: unknown state %q of %s", id, r.State, r.TxID)
			}
			view.Journal = append(view.Journal, twophase.JournalEntry{TxID: r.TxID, State: st, Term: r.Term})
		}
		in.Shards = append(in.Shards, view)
	}
	rep := shardsvc.Audit(in)
	if !rep.Clean() {
		d.t.Errorf("audit: %d atomicity violations, %d double booked, %d in doubt:\n%s", rep.AtomicityViolations,
			rep.DoubleBooked, rep.InDoubt, strings.Join(rep.Problems, "\n"))
	}
	d.t.Logf("audit: %d transactions over %d nodes and %d shards, clean=%v", rep.Txns, rep.Nodes, rep.Shards, rep.Clean())
	return states
}
