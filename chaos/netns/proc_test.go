package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

// nsInode is the inode of a named namespace, as /proc/PID/ns/net shows it.
func nsInode(t *testing.T, ns string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// advances waits until the heartbeat counter moves past from.
func advances(t *testing.T, file string, from int) int {
	t.Helper()
	var now int
	testutil.WaitUntil(t, 5*time.Second, "heartbeat to advance", func() bool { now = readCounter(t, file); return now > from })
	return now
}

// TestProcLifecycle: a child in a namespace runs there, Pause really stops it,
// Resume continues it, Kill ends it, Restart runs it again with the log appended.
func TestProcLifecycle(t *testing.T) {
	needRoot(t)
	n := newNet(t, "p")
	h := n.Host("p")
	dir := t.TempDir()
	hb, logPath := filepath.Join(dir, "hb"), filepath.Join(dir, "log")
	p := startHelper(t, h, logPath, nil, "heartbeat", hb)

	c := advances(t, hb, 0)
	testutil.WaitUntil(t, 5*time.Second, "the namespace line in the log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "netns=")
	})
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "netns="+nsInode(t, h.NS)) {
		t.Fatalf("process is not in %s: log %q", h.NS, b)
	}

	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 5*time.Second, "state T", func() bool { return procState(p.PID()) == "T" })
	paused := readCounter(t, hb)
	// While paused the counter must stay put: watch it for 300ms.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		if got := readCounter(t, hb); got != paused {
			t.Fatalf("paused process advanced from %d to %d", paused, got)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	if !p.Running() {
		t.Error("a paused process reports not running")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	c = advances(t, hb, max(c, paused))

	firstPID, firstExit := p.PID(), p.Exited()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstExit:
	default:
		t.Fatal("Kill returned before the process exited")
	}
	if p.Running() || p.Err() == nil {
		t.Errorf("after Kill: running=%v err=%v", p.Running(), p.Err())
	}
	if err := p.Pause(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Pause of a dead process: %v, want ErrNotRunning", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill of a dead process: %v", err)
	}
	dead := readCounter(t, hb)

	if err := p.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p.PID() == firstPID || !p.Running() || p.Err() != nil {
		t.Errorf("after Restart: pid %d (was %d) running=%v err=%v", p.PID(), firstPID, p.Running(), p.Err())
	}
	advances(t, hb, dead)
	testutil.WaitUntil(t, 5*time.Second, "two starts in the log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "netns=") == 2
	})

	// Stop: the heartbeat dies of SIGTERM well within the grace period.
	start := time.Now()
	if err := p.Stop(t.Context(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second || p.Running() {
		t.Errorf("Stop took %v, running=%v", took, p.Running())
	}
}

// TestStopKillsAfterGrace: a process that ignores SIGTERM is SIGKILLed when the
// grace period ends, also while paused.
func TestStopKillsAfterGrace(t *testing.T) {
	needRoot(t)
	n := newNet(t, "q")
	hb := filepath.Join(t.TempDir(), "hb")
	p := startHelper(t, n.Host("q"), "", []string{"SMC_IGNORE_TERM=1"}, "heartbeat", hb)
	advances(t, hb, 0)
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(t.Context(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ee interface{ Sys() any }
	if p.Running() || !errors.As(p.Err(), &ee) {
		t.Fatalf("after Stop: running=%v err=%v", p.Running(), p.Err())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("exit status %v, want death by SIGKILL", p.Err())
	}
}

// TestStartProcValidates: a spec without a program is refused, and the root
// namespace (Host nil) works without root.
func TestStartProcValidates(t *testing.T) {
	if _, err := StartProc(t.Context(), ProcSpec{Name: "x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("empty Path: %v, want ErrConfig", err)
	}
	if _, err := StartProc(t.Context(), ProcSpec{Name: "x", Path: "/bin/true", Host: &Host{}}); !errors.Is(err, ErrConfig) {
		t.Errorf("Host without namespace: %v, want ErrConfig", err)
	}
	hb := filepath.Join(t.TempDir(), "hb")
	p := startHelper(t, nil, "", nil, "heartbeat", hb)
	advances(t, hb, 0)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
}
