package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/netns"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/deploy/helm/render"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// The release the test installs.
const (
	release   = "rel"
	namespace = "e2e"
	coordSTS  = "rel-shardmatch-coordinator"
	natsSTS   = "rel-shardmatch-nats"
	shardSTS  = "rel-shardmatch-shard"
	// historyMount is where the pods write their history files (a test-only volume).
	historyMount = "/var/lib/shardmatch-e2e-history"
)

// What the run must show, per phase. Without -race a 2-core machine running NATS, 3
// to 5 coordinators, 2 shards and this test at once holds SHARDMATCH_E2E_RATE=500
// (docs/kubernetes.md); the default is what the race-instrumented load driver offers
// there with other packages' tests beside it. The test logs what it measured;
// TestHelmSustainedRate measures a machine.
const (
	maxCommitGap = 2 * time.Second
	defaultRate  = 250
)

// needRoot skips the test where network namespaces cannot be made.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network and mount namespaces (run as root, like the chaos runner tests)")
	}
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the %s command (iproute2, nftables, util-linux)", tool)
		}
	}
}

// buildImage builds the image's two binaries (without -race: the pods run at full
// speed) and maps them to their paths in the image.
func buildImage(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	img := map[string]string{}
	for _, name := range []string{"coordinator", "shardsvc"} {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, "github.com/shardmatch/shardmatch/cmd/"+name)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		img["/usr/local/bin/"+name] = out
	}
	return img
}

// renderChart renders the chart as `helm install rel -n e2e` would with these
// coordinator settings: embedded NATS, demo shards with enough players for the load.
func renderChart(t *testing.T, replicas int, logLevel string) *Objects {
	t.Helper()
	m, err := render.Render(render.Options{ReleaseName: release, Namespace: namespace, Values: map[string]any{
		// The token is set: offline rendering has no `lookup` of the Secret a
		// previous install created, so a generated token would change with every
		// render, and new pods could not --join the old ones.
		"coordinator": map[string]any{"replicas": replicas, "config": map[string]any{"logLevel": logLevel},
			"adminToken": map[string]any{"value": "e2e-admin-token"}},
		"shards": map[string]any{"enabled": true, "replicas": 2, "players": 4000,
			// Players that never refuse, and matches that end soon after release,
			// so that the load is not starved of players.
			"extraArgs": []any{"--always-available", "--match-ttl=2s"}},
	}})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return &Objects{StatefulSets: m.StatefulSets, Services: m.Services, ConfigMaps: m.ConfigMaps, Secrets: m.Secrets}
}

// instrument adds the test's only change to the rendered pods: a history volume and
// the flags that make coordinators and shards record into it, for the I1–I7 audit.
func instrument(epoch time.Time, dir string) func(*PodPlan) {
	return func(p *PodPlan) {
		if p.StatefulSet != coordSTS && p.StatefulSet != shardSTS {
			return
		}
		p.Volumes = append(p.Volumes, hostPathVolume("e2e-history", dir))
		p.Main.Mounts = append(p.Main.Mounts, volumeMount("e2e-history", historyMount))
		p.Main.Argv = append(p.Main.Argv, "--history-dir="+historyMount,
			"--history-epoch="+strconv.FormatInt(epoch.UnixNano(), 10))
	}
}

// env is the running test's view of the cluster.
type env struct {
	t             *testing.T
	c             *Cluster
	token         string
	http          *http.Client
	work, histDir string
	epoch         time.Time
	image         map[string]string
	// A secured install: the admin API's scheme ("" is http), the read token the
	// read calls send, and the NATS credentials the load connects with.
	scheme, readToken, loadCreds string
}

func (e *env) adminURL(p *Pod) string {
	scheme := e.scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + p.IP() + ":8080"
}

// status fetches every live coordinator's /v1/status.
func (e *env) statuses(ctx context.Context) []*admin.Status {
	var urls []string
	for _, p := range e.c.Pods(coordSTS) {
		urls = append(urls, e.adminURL(p))
	}
	return (&admin.StatusClient{HTTP: e.http, Token: e.readToken}).FetchAll(ctx, urls)
}

// leader returns the admin URL of the coordinator that leads, with its status.
func (e *env) leader(ctx context.Context) (string, *admin.Status, error) {
	for _, st := range e.statuses(ctx) {
		if st != nil && st.Err == nil && st.Leading {
			return st.Endpoint, st, nil
		}
	}
	return "", nil, fmt.Errorf("no coordinator leads")
}

// waitFormed waits until a leader leads voters, every live coordinator agrees on
// it, and every shard is registered.
func (e *env) waitFormed(ctx context.Context, voters int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		last = e.formed(ctx, voters)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not formed: %w", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e *env) formed(ctx context.Context, voters int) error {
	url, st, err := e.leader(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range st.Peers {
		if strings.EqualFold(p.Suffrage, "voter") {
			n++
		}
	}
	if n != voters {
		return fmt.Errorf("%d voters, want %d: %+v", n, voters, st.Peers)
	}
	for _, s := range e.statuses(ctx) {
		if s.Err != nil || s.LeaderID != st.NodeID {
			return fmt.Errorf("%s does not follow %s: %+v %v", s.Endpoint, st.NodeID, s.LeaderID, s.Err)
		}
	}
	var list struct {
		Shards []struct {
			ShardID string `json:"shard_id"`
		} `json:"shards"`
	}
	if err := e.getJSON(ctx, url+"/v1/shards", &list); err != nil {
		return err
	}
	if want := len(e.c.Pods(shardSTS)); len(list.Shards) < want {
		return fmt.Errorf("%d shards registered, want %d", len(list.Shards), want)
	}
	return nil
}

func (e *env) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if e.readToken != "" {
		req.Header.Set("Authorization", "Bearer "+e.readToken)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// removeVoter does what docs/kubernetes.md tells an operator to do before scaling
// down: DELETE /v1/voters/<id> on the leader, retried while leadership moves.
func (e *env) removeVoter(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := e.tryRemoveVoter(ctx, id)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove voter %s: %w", id, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e *env) tryRemoveVoter(ctx context.Context, id string) error {
	url, _, err := e.leader(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url+"/v1/voters/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE %s/v1/voters/%s: %s: %s", url, id, resp.Status, b)
	}
	return nil
}

// install renders the chart (3 coordinators, embedded NATS, 2 demo shards), runs
// every pod and waits until the cluster has formed and every shard is registered.
func install(ctx context.Context, t *testing.T) *env {
	t.Helper()
	e := newEnv(ctx, t)
	start := time.Now()
	if err := e.c.Apply(ctx, renderChart(t, 3, "info")); err != nil {
		t.Fatalf("install: %v", err)
	}
	if err := e.waitFormed(ctx, 3); err != nil {
		t.Fatal(err)
	}
	t.Logf("installed: NATS, 3 coordinators and 2 shards Ready and formed in %v", time.Since(start).Round(time.Millisecond))
	e.token, _ = e.c.Pods(coordSTS)[0].Plan.Main.Lookup("SHARDMATCH_ADMIN_TOKEN")
	return e
}

// newEnv builds the image and makes an empty cluster whose pods record their
// history (instrument), removed at cleanup; nothing is installed yet.
func newEnv(ctx context.Context, t *testing.T) *env {
	t.Helper()
	image := buildImage(t)
	work := t.TempDir()
	if keep := os.Getenv("SHARDMATCH_E2E_KEEP"); keep != "" { // pods' logs, PVCs, history
		work = filepath.Join(keep, time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping the run's files in %s", work)
	}
	histDir := filepath.Join(work, "history")
	if err := os.MkdirAll(histDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(histDir, 0o777); err != nil { // the pods run as 65532
		t.Fatal(err)
	}
	epoch := time.Now().Round(0)
	prefix := fmt.Sprintf("e%05x", os.Getpid()&0xfffff)
	var logDone atomic.Bool
	t.Cleanup(func() { logDone.Store(true) }) // runs last
	log := slog.New(slog.NewTextHandler(testWriter{t, &logDone}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := NewCluster(ctx, Config{Namespace: namespace, Prefix: prefix, WorkDir: work, Image: image,
		Instrument: compose(instrument(epoch, histDir), devCompat), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c)
		}
		if err := c.Close(); err != nil {
			t.Logf("cluster close: %v", err)
		}
		if left, err := netns.Sweep(context.Background(), prefix); err != nil || len(left) > 0 {
			t.Logf("sweep after close: removed %v, err %v", left, err)
		}
		SweepEtcNetns(prefix)
	})
	return &env{t: t, c: c, http: &http.Client{Timeout: 3 * time.Second}, work: work, histDir: histDir, epoch: epoch, image: image}
}

// rampUp is how long each load takes to reach its rate.
const rampUp = 5 * time.Second

// startLoad starts proposing at rate (reached after ramp) through the NATS pods; stop is idempotent and
// also runs at cleanup.
func (e *env) startLoad(t *testing.T, rate float64, ramp time.Duration) (*Load, func()) {
	t.Helper()
	var natsURLs []string
	for _, p := range e.c.Pods(natsSTS) {
		natsURLs = append(natsURLs, "nats://"+p.IP()+":4222")
	}
	var shardPlans []*PodPlan
	for _, p := range e.c.Pods(shardSTS) {
		shardPlans = append(shardPlans, p.Plan)
	}
	load, err := StartLoad(LoadConfig{NATSURLs: natsURLs, Shards: shardPlans, Rate: rate, MaxInFlight: 2000,
		RampUp: ramp, Seed: 1, Epoch: e.epoch, MatchLength: 200 * time.Millisecond, Creds: e.loadCreds})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(load.Stop) }
	t.Cleanup(stop)
	return load, stop
}

// TestHelmSustainedRate (SHARDMATCH_E2E_SWEEP=1) installs the chart and offers
// rising rates, 8 s each, to find the highest this machine sustains: every
// proposal answered well within its timeout and no 2 s without a commit.
func TestHelmSustainedRate(t *testing.T) {
	needRoot(t)
	if os.Getenv("SHARDMATCH_E2E_SWEEP") == "" {
		t.Skip("set SHARDMATCH_E2E_SWEEP=1 (and optionally SHARDMATCH_E2E_SWEEP_RATES=100,200,...) to measure")
	}
	rates := []float64{100, 200, 300, 400, 500}
	if v := os.Getenv("SHARDMATCH_E2E_SWEEP_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatal(err)
			}
			rates = append(rates, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := install(ctx, t)
	for _, rate := range rates {
		load, stop := e.startLoad(t, rate, 0)
		from := load.Now()
		time.Sleep(8 * time.Second) //nolint:forbidigo // the load runs for 8 s
		to := load.Now()
		stop()
		m := Measure(load.Rec.History(), Window{Name: fmt.Sprintf("rate %.0f", rate), From: from, To: to})
		st := load.Stats()
		t.Logf("%s | shed %d starved %d", m, st.Shed, st.Starved)
		if m.Unknown > 0 || m.LongestGap > maxCommitGap {
			t.Logf("rate %.0f does not hold; stopping the sweep", rate)
			break
		}
	}
}

// TestHelmRollingUpdateAndScaling runs the chart's rendered pods as real processes,
// each in its own network and mount namespace, and under an open-loop load of
// proposals does what Kubernetes would: install, a rolling update (a changed
// setting rolls the coordinators, highest ordinal first, preStop + SIGTERM + grace,
// each new pod Ready before the next), a scale-out from 3 to 5 coordinators through
// the values, and back to 3 (voters removed through the admin API first). Every
// phase must lose no proposal (0 failed, 0 unknown), never go 2 s without a commit,
// and the whole run must pass the I1–I7 audit.
func TestHelmRollingUpdateAndScaling(t *testing.T) {
	needRoot(t)
	testutil.Exclusive(t, testutil.HeavyProcesses) // judged by commit gaps and latency
	rate := float64(defaultRate)
	if v := os.Getenv("SHARDMATCH_E2E_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("SHARDMATCH_E2E_RATE=%q: %v", v, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := install(ctx, t)
	c := e.c
	load, stopLoad := e.startLoad(t, rate, rampUp)

	var windows []Window
	phase := func(name string, f func() error) {
		t.Helper()
		from := load.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		windows = append(windows, Window{Name: name, From: from, To: load.Now()})
	}
	steady := func(d time.Duration) func() error {
		return func() error { time.Sleep(d); return nil } //nolint:forbidigo // the load runs for d
	}
	// The load ramps up from a tenth of the rate over rampUp, unmeasured: a deployment
	// that has just formed (cold caches, empty streams) is not met with all of it.
	time.Sleep(rampUp) //nolint:forbidigo // the load ramps up for rampUp
	phase("steady", steady(5*time.Second))
	phase("rolling update", func() error { return c.Apply(ctx, renderChart(t, 3, "warn")) })
	phase("scale 3→5", func() error {
		if err := c.Apply(ctx, renderChart(t, 5, "warn")); err != nil {
			return err
		}
		return e.waitFormed(ctx, 5)
	})
	phase("scale 5→3", func() error {
		for _, ord := range []int{4, 3} {
			if err := e.removeVoter(ctx, fmt.Sprintf("%s-%d", coordSTS, ord)); err != nil {
				return err
			}
		}
		if err := c.Apply(ctx, renderChart(t, 3, "warn")); err != nil {
			return err
		}
		return e.waitFormed(ctx, 3)
	})
	phase("steady after", steady(3*time.Second))
	stopLoad()
	e.verifyRun(ctx, load, rate, windows)
}

// verifyRun checks a finished run (the load stopped): the I1–I7 audit over the
// history, per window no failed, unknown or unanswered proposal, no commit gap over
// maxCommitGap and some commit; no pod restarted, killed after its grace period or
// with a failed preStop hook.
func (e *env) verifyRun(ctx context.Context, load *Load, rate float64, windows []Window) {
	t, c := e.t, e.c
	t.Helper()
	stats := load.Stats()
	targets := AuditTargets{Coordinators: map[string]string{}, Shards: map[string]string{}, HistoryDir: e.histDir}
	if e.scheme != "" || e.readToken != "" {
		targets.HTTP, targets.Token = e.http, e.readToken
	}
	for _, p := range c.Pods(coordSTS) {
		targets.Coordinators[p.Name()] = e.adminURL(p)
	}
	for _, p := range c.Pods(shardSTS) {
		targets.Shards[p.Name()] = "http://" + p.IP() + ":9090"
	}
	rep, h, err := Audit(ctx, load.Rec, targets, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := os.Create(filepath.Join(e.work, "history.json")); err == nil {
		_ = h.WriteJSON(f)
		_ = f.Close()
	}

	// The numbers.
	t.Logf("offered %.0f proposals/s; driver: proposed %d committed %d aborted %v errors %d shed %d starved %d released %d",
		rate, stats.Proposed, stats.Committed, stats.Aborted, stats.Errors, stats.Shed, stats.Starved, stats.Released)
	all := Window{Name: "whole run", From: windows[0].From, To: windows[len(windows)-1].To}
	for _, w := range append(windows, all) {
		m := Measure(h, w)
		t.Logf("%s", m)
		if m.Failed > 0 || m.Unknown > 0 || m.NotReturned > 0 {
			t.Errorf("%s: %d failed, %d unknown, %d unanswered proposals; want none", w.Name, m.Failed, m.Unknown, m.NotReturned)
		}
		if m.LongestGap > maxCommitGap {
			t.Errorf("%s: %v without a commit (ending at %.1fs); want at most %v", w.Name, m.LongestGap, m.GapEndsAt.Seconds(), maxCommitGap)
		}
		if m.Committed == 0 {
			t.Errorf("%s: nothing committed", w.Name)
		}
	}
	for _, ev := range c.Events() {
		t.Logf("statefulset step: %-8s %-30s %v", ev.Kind, ev.Pod, ev.Took().Round(time.Millisecond))
	}
	for _, p := range c.AllPods() {
		if n := p.Restarts(); n > 0 {
			t.Errorf("pod %s restarted %d times: %v", p.Name(), n, p.Exits())
		}
		for _, s := range p.Stops() {
			t.Logf("pod %s (%s) stopped: %s", p.Name(), p.IP(), s)
			if strings.Contains(s, "killed") || strings.Contains(s, "hung") {
				t.Errorf("pod %s did not exit within its grace period after SIGTERM: %s", p.Name(), s)
			}
			if strings.Contains(s, "preStop failed") {
				t.Errorf("pod %s: the chart's preStop hook failed: %s", p.Name(), s)
			}
		}
	}
	t.Logf("audit: %d violations, stats %v, notes %v, settled %v", len(rep.Violations), rep.Stats, rep.Notes, h.Settled)
	if !h.Settled {
		t.Errorf("the run did not settle within 60 s after the load stopped")
	}
	for i, v := range rep.Violations {
		if i == 20 {
			t.Errorf("... and %d more", len(rep.Violations)-20)
			break
		}
		t.Errorf("violation %s: %s (txid %s player %s shard %s node %s)", v.Invariant, v.Message, v.TxID, v.Player, v.Shard, v.Node)
	}
	if stats.Shed > 0 {
		t.Logf("note: %d proposals shed at the in-flight bound: the offered rate was not fully offered", stats.Shed)
	}
}

// devCompat adapts the plans to older binaries while the chart runs ahead of them;
// nil when nothing needs adapting.
var devCompat func(*PodPlan)

func compose(fs ...func(*PodPlan)) func(*PodPlan) {
	return func(p *PodPlan) {
		for _, f := range fs {
			if f != nil {
				f(p)
			}
		}
	}
}

// dumpLogs logs the tail of every pod's log.
func dumpLogs(t *testing.T, c *Cluster) {
	for _, p := range c.AllPods() {
		b, err := os.ReadFile(p.LogPath())
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		t.Logf("---- %s (%s, %s) last lines:\n%s", p.Name(), p.IP(), p.LogPath(), strings.Join(lines, "\n"))
		if stacks := hungStacks(string(b)); stacks != "" {
			t.Logf("---- %s hung: its goroutines in shardmatch code at SIGQUIT:\n%s", p.Name(), stacks)
		}
	}
}

// hungStacks picks out of a log the goroutine dump a Go process prints on SIGQUIT and
// keeps the goroutines with a shardmatch frame (a hang is in our code or waits on it);
// "" when the log has no dump. The tail dumpLogs prints would show only the last one.
func hungStacks(log string) string {
	i := strings.Index(log, "SIGQUIT: quit")
	if i < 0 {
		return ""
	}
	var keep []string
	for _, g := range strings.Split(log[i:], "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && strings.Contains(g, "github.com/shardmatch/") {
			keep = append(keep, g)
		}
	}
	if len(keep) > 80 {
		keep = append(keep[:80], fmt.Sprintf("... and %d more goroutines", len(keep)-80))
	}
	return strings.Join(keep, "\n\n")
}

// testWriter logs into the test until the test's cleanup ends; later writes (a
// process reaped after the end) are dropped rather than panicking.
type testWriter struct {
	t    *testing.T
	done *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
