package doctest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

// The README's runnable session: these marked blocks, in this order, in one bash.
var readmeSteps = []string{"start", "look", "stop"}

// TestReadmeMultiProcess runs the README's "Running it as separate processes" blocks
// for real, as a reader pasting them into one bash would: start (NATS, three
// coordinators, two shards, wait until ready), look (status and the shard's counters),
// stop. It checks that the cluster elects a leader and commits matches, that the stop
// line leaves no process behind, and that the metrics the operator's guide names
// exist.
//
// Two things differ from a paste, both mechanical: the test builds the binaries with
// the README's own `go build -o bin/ ./cmd/...` into a directory of its own, and it
// moves every loopback port the blocks name by one offset into a free range below
// the kernel's ephemeral ports. With the README's fixed ports (4222, 7001-7003,
// 8081-8083, 9091-9092) the test would fail on any machine where something already
// listens there (a developer's NATS on 4222), and no other test uses the range it
// moves to: the other packages, run in parallel by `go test ./...`, listen on
// ephemeral ports (":0"), which the kernel never hands out below that range. So ports
// need no lock. The test still takes the HeavyProcesses lock: it runs a whole
// deployment under load, which would starve the tests judged by latency that hold it
// (it waits for them, and they for it; its own checks do not depend on timing).
func TestReadmeMultiProcess(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed to run the README's blocks (.ci/run installs it): %v", tool, err)
			}
			t.Skipf("no %s on this machine: %v", tool, err)
		}
	}
	steps := readmeSession(t, readDoc(t, "README.md"))
	bin := binaries(t)
	testutil.Exclusive(t, testutil.HeavyProcesses)
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}

	ports := portsOf(t, steps)
	offset := freeOffset(t, ports)
	t.Logf("README ports %v moved by %+d", ports, offset)
	for i, s := range steps {
		steps[i] = shiftPorts(t, s, ports, offset)
	}

	sh := startBash(t, dir)
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, filepath.Join(dir, "data"))
		}
	})

	// start: everything up, and the block's own wait until every process is ready.
	out, code := sh.step(t, "start", steps[0], 90*time.Second)
	if code != 0 || strings.Contains(out, "not ready") {
		t.Fatalf("the start block exited %d:\n%s", code, out)
	}
	admins := regexp.MustCompile(`127\.0\.0\.1:\d+/readyz`).FindAllString(steps[0], -1)
	shards := regexp.MustCompile(`127\.0\.0\.1:\d+/status`).FindAllString(steps[0], -1)
	if len(admins) != 3 || len(shards) != 2 {
		t.Fatalf("the start block waits for %d coordinators and %d shards, want 3 and 2", len(admins), len(shards))
	}
	for i := range admins {
		admins[i] = "http://" + strings.TrimSuffix(admins[i], "/readyz")
	}
	// Ready means ready: every coordinator answers with one leader, right away.
	leaders := map[string]bool{}
	for _, a := range admins {
		var st struct {
			LeaderID string `json:"leader_id"`
			Ready    bool   `json:"ready"`
		}
		if err := getJSON(a+"/v1/status", &st); err != nil {
			t.Fatalf("right after the start block: %v", err)
		}
		if !st.Ready || st.LeaderID == "" {
			t.Fatalf("%s right after the start block: ready=%v leader=%q", a, st.Ready, st.LeaderID)
		}
		leaders[st.LeaderID] = true
	}
	if len(leaders) != 1 {
		t.Fatalf("the coordinators name different leaders: %v", leaders)
	}
	// The load driver's matches commit at both shards.
	testutil.WaitFor(t, 30*time.Second, "both shards to commit matches", func() error {
		for _, s := range shards {
			var st struct{ Participant struct{ Commits uint64 } }
			if err := getJSON("http://"+s, &st); err != nil {
				return err
			}
			if st.Participant.Commits == 0 {
				return fmt.Errorf("%s: no commit yet", s)
			}
		}
		return nil
	})
	// The operator's guide, against this live cluster.
	t.Run("GuideMetrics", func(t *testing.T) { checkGuideMetrics(t, admins, shards) })
	t.Run("GuideEndpoints", func(t *testing.T) { checkGuideEndpoints(t, admins[0]) })

	// look: the status table names the leader, the shard's counters show commits.
	out, code = sh.step(t, "look", steps[1], 30*time.Second)
	if code != 0 {
		t.Fatalf("the look block exited %d:\n%s", code, out)
	}
	for _, want := range []*regexp.Regexp{regexp.MustCompile(`leader c[123]\b`), regexp.MustCompile(`"Commits": [1-9]`)} {
		if !want.MatchString(out) {
			t.Errorf("the look block's output does not match %s:\n%s", want, out)
		}
	}

	// stop: nothing of the group is left but the shell itself.
	out, code = sh.step(t, "stop", steps[2], 60*time.Second)
	t.Logf("the stop block exited %d:\n%s", code, out)
	if left := liveInGroup(sh.pgid, sh.cmd.Process.Pid); len(left) > 0 {
		t.Errorf("the stop block left processes running: %v", left)
	}
	sh.close(t)
}

// readmeSession returns the README's runnable blocks in readmeSteps' order.
func readmeSession(t *testing.T, md string) []string {
	t.Helper()
	blocks, err := Blocks(md)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	var names, texts []string
	for _, b := range blocks {
		name, ok := strings.CutPrefix(b.Marker, "run ")
		if !ok {
			continue
		}
		if b.Lang != "sh" {
			t.Fatalf("README.md:%d: the block marked %q is %q, want sh", b.Line, b.Marker, b.Lang)
		}
		names, texts = append(names, name), append(texts, b.Text)
	}
	if strings.Join(names, ",") != strings.Join(readmeSteps, ",") {
		t.Fatalf("README.md: runnable blocks %v, want %v (markers `<!-- test: run NAME -->`)", names, readmeSteps)
	}
	// The binaries are the test's own build, of the same packages into bin/.
	var kept []string
	built := false
	for _, line := range strings.Split(texts[0], "\n") {
		if strings.HasPrefix(line, "go build") {
			cmd, _, _ := strings.Cut(line, "#")
			if strings.Join(strings.Fields(cmd), " ") != "go build -o bin/ ./cmd/..." {
				t.Fatalf("README.md: the start block builds with %q; the test builds `go build -o bin/ ./cmd/...`", line)
			}
			built = true
			continue
		}
		kept = append(kept, line)
	}
	if !built {
		t.Fatal("README.md: the start block does not build the binaries with `go build -o bin/ ./cmd/...`")
	}
	texts[0] = strings.Join(kept, "\n")
	return texts
}

var (
	loopPortRE  = regexp.MustCompile(`127\.0\.0\.1:(\d+)\$i\b`)
	plainPortRE = regexp.MustCompile(`127\.0\.0\.1:(\d+)\b`)
)

// portsOf lists every loopback port the blocks name: 127.0.0.1:N, and 127.0.0.1:N$i in
// a loop (the ports N1 to N9).
func portsOf(t *testing.T, steps []string) []int {
	t.Helper()
	seen := map[int]bool{}
	var ports []int
	add := func(p int) {
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	for _, s := range steps {
		for _, m := range loopPortRE.FindAllStringSubmatch(s, -1) {
			base, _ := strconv.Atoi(m[1])
			for i := 1; i <= 9; i++ {
				add(base*10 + i)
			}
		}
		for _, m := range plainPortRE.FindAllStringSubmatchIndex(s, -1) {
			if strings.HasPrefix(s[m[1]:], "$i") {
				continue
			}
			p, _ := strconv.Atoi(s[m[2]:m[3]])
			add(p)
		}
	}
	if len(ports) == 0 {
		t.Fatal("README.md: the runnable blocks name no 127.0.0.1 port")
	}
	return ports
}

// freeOffset picks an offset that moves every port into a free range below the
// ephemeral ports.
func freeOffset(t *testing.T, ports []int) int {
	t.Helper()
	maxPort := 0
	for _, p := range ports {
		maxPort = max(maxPort, p)
	}
	low := testutil.EphemeralLow()
	const first = 10000
	var candidates []int
	for off := first; maxPort+off < low; off += 100 {
		candidates = append(candidates, off)
	}
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
next:
	for _, off := range candidates {
		for _, p := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				continue next
			}
			_ = l.Close()
		}
		return off
	}
	t.Fatalf("no free range for the ports %v below %d", ports, low)
	return 0
}

// shiftPorts moves every port of s by offset, and fails if a port of ports is still
// named in another form (then the substitution would miss it).
func shiftPorts(t *testing.T, s string, ports []int, offset int) string {
	t.Helper()
	s = loopPortRE.ReplaceAllStringFunc(s, func(m string) string {
		base, _ := strconv.Atoi(loopPortRE.FindStringSubmatch(m)[1])
		return fmt.Sprintf("127.0.0.1:$((%d+i))", base*10+offset)
	})
	s = plainPortRE.ReplaceAllStringFunc(s, func(m string) string {
		p, _ := strconv.Atoi(plainPortRE.FindStringSubmatch(m)[1])
		return fmt.Sprintf("127.0.0.1:%d", p+offset)
	})
	for _, p := range ports {
		if regexp.MustCompile(`\b` + strconv.Itoa(p) + `\b`).MatchString(s) {
			t.Fatalf("README.md: port %d is named other than as 127.0.0.1:%d; the test cannot move it:\n%s", p, p, s)
		}
	}
	return s
}

// shell is one bash reading the blocks from a pipe, as a terminal pasted into.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *testutil.Buffer
	pgid  int
	done  chan struct{}
	steps int
}

// startBash starts bash in dir, in a process group of its own that the test's
// cleanup kills whatever happens, and checks that none of it is left.
func startBash(t *testing.T, dir string) *shell {
	t.Helper()
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := &shell{cmd: cmd, stdin: stdin, out: out, pgid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(sh.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = syscall.Kill(-sh.pgid, syscall.SIGKILL)
		<-sh.done
		testutil.WaitFor(t, 10*time.Second, "the README's processes to be gone", func() error {
			if left := liveInGroup(sh.pgid, -1); len(left) > 0 {
				return fmt.Errorf("still running: %v", left)
			}
			return nil
		})
	})
	return sh
}

// step writes one block and waits until bash has run it: it returns what the block
// printed and the exit status of its last command.
func (sh *shell) step(t *testing.T, name, block string, timeout time.Duration) (string, int) {
	t.Helper()
	sh.steps++
	from := sh.out.Len()
	mark := fmt.Sprintf("@@doctest %d", sh.steps)
	if _, err := io.WriteString(sh.stdin, block+"\necho \""+mark+" exit $?@@\"\n"); err != nil {
		t.Fatalf("step %s: write to bash: %v\n%s", name, err, sh.out.String())
	}
	re := regexp.MustCompile(regexp.QuoteMeta(mark) + ` exit (\d+)@@\n`)
	var m []int
	testutil.WaitFor(t, timeout, "the README's "+name+" block to finish", func() error {
		select {
		case <-sh.done:
			return fmt.Errorf("bash exited:\n%s", sh.out.String()[from:])
		default:
		}
		if m = re.FindStringSubmatchIndex(sh.out.String()[from:]); m == nil {
			return fmt.Errorf("not yet; output so far:\n%s", sh.out.String()[from:])
		}
		return nil
	})
	all := sh.out.String()[from:]
	code, _ := strconv.Atoi(all[m[2]:m[3]])
	return all[:m[0]], code
}

// close ends bash's input, so it exits, and waits for it.
func (sh *shell) close(t *testing.T) {
	t.Helper()
	_ = sh.stdin.Close()
	select {
	case <-sh.done:
	case <-time.After(10 * time.Second):
		t.Error("bash did not exit at the end of its input")
	}
}

// cleanEnv is the test's environment without the settings that would change what the
// blocks do (SHARDMATCH_*, SHARDSVC_*, OTEL_*, a bash startup file).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SHARDMATCH_") || strings.HasPrefix(k, "SHARDSVC_") || strings.HasPrefix(k, "OTEL_") ||
			k == "BASH_ENV" || k == "ENV" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// liveInGroup lists the processes of group pgid that are alive (zombies excluded),
// but except, as "pid comm".
func liveInGroup(pgid, except int) []string {
	entries, _ := os.ReadDir("/proc")
	var live []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			live = append(live, fmt.Sprintf("%d %s", pid, s[strings.IndexByte(s, '(')+1:i]))
		}
	}
	return live
}

// getJSON GETs url and decodes its JSON body.
func getJSON(url string, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %v", url, err)
	}
	return nil
}

// logTails logs the end of every log file the blocks wrote.
func logTails(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("%s (last lines):\n%s", filepath.Base(f), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}
