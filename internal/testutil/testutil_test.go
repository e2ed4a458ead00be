package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recordingTB is a testing.TB whose Fatalf records the message instead of ending
// the test, so the failure path can be checked.
type recordingTB struct {
	testing.TB
	fatal []string
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = append(r.fatal, fmt.Sprintf(format, args...))
}

func TestWaitForReturnsOnceFnSucceeds(t *testing.T) {
	rec := &recordingTB{TB: t}
	calls := 0
	WaitFor(rec, 5*time.Second, "the third call", func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if calls != 3 || len(rec.fatal) != 0 {
		t.Fatalf("%d calls, failures %q; want 3 calls and no failure", calls, rec.fatal)
	}
}

func TestWaitForFailsWithWhatAndLastError(t *testing.T) {
	rec := &recordingTB{TB: t}
	calls := 0
	start := time.Now()
	WaitFor(rec, 50*time.Millisecond, "the moon", func() error {
		calls++
		return fmt.Errorf("attempt %d", calls)
	})
	took := time.Since(start)
	if len(rec.fatal) != 1 {
		t.Fatalf("failures %q, want exactly one", rec.fatal)
	}
	msg := rec.fatal[0]
	if !strings.Contains(msg, "the moon") || !strings.Contains(msg, fmt.Sprintf("attempt %d", calls)) || !strings.Contains(msg, "50ms") {
		t.Errorf("failure %q does not name what, the timeout and the last error (attempt %d)", msg, calls)
	}
	// 5+10+20 ms of back-off before the deadline, then one call at it.
	if calls < 3 || took < 50*time.Millisecond {
		t.Errorf("%d calls in %s, want several calls and at least the timeout", calls, took)
	}
}

func TestWaitForCallsFnOnceWithoutTime(t *testing.T) {
	rec := &recordingTB{TB: t}
	calls := 0
	WaitFor(rec, 0, "nothing", func() error { calls++; return errors.New("no") })
	if calls != 1 || len(rec.fatal) != 1 {
		t.Fatalf("%d calls, failures %q; want 1 call and a failure", calls, rec.fatal)
	}
}

func TestWaitUntil(t *testing.T) {
	rec := &recordingTB{TB: t}
	calls := 0
	WaitUntil(rec, 5*time.Second, "two calls", func() bool { calls++; return calls == 2 })
	if calls != 2 || len(rec.fatal) != 0 {
		t.Fatalf("%d calls, failures %q; want 2 calls and no failure", calls, rec.fatal)
	}

	WaitUntil(rec, 20*time.Millisecond, "pigs to fly", func() bool { return false })
	if len(rec.fatal) != 1 || !strings.Contains(rec.fatal[0], "pigs to fly") || !strings.Contains(rec.fatal[0], "20ms") {
		t.Fatalf("failures %q, want one naming what and the timeout", rec.fatal)
	}
}

// The interval backs off, so a long wait makes few calls.
func TestPollBacksOff(t *testing.T) {
	calls := 0
	err := poll(400*time.Millisecond, func() error { calls++; return errors.New("never") })
	if err == nil || err.Error() != "never" {
		t.Fatalf("poll = %v, want fn's last error", err)
	}
	// 5, 10, 20, 40, 80, 100, 100, 45 ms: 9 calls; at a fixed 5 ms it would be 80.
	if calls < 5 || calls > 20 {
		t.Errorf("%d calls in 400ms, want about 9", calls)
	}
}

// WaitUntilEvery keeps its interval: a condition that steps a fake clock is called
// as often at the end of the wait as at its start.
func TestWaitUntilEveryDoesNotBackOff(t *testing.T) {
	rec := &recordingTB{TB: t}
	calls := 0
	WaitUntilEvery(rec, 200*time.Millisecond, 5*time.Millisecond, "the end of time", func() bool { calls++; return false })
	if len(rec.fatal) != 1 || !strings.Contains(rec.fatal[0], "the end of time") {
		t.Fatalf("failures %q, want one naming what", rec.fatal)
	}
	// 40 calls at a steady 5ms; with poll's back-off it would be about 7.
	if calls < 25 {
		t.Errorf("%d calls in 200ms at 5ms apart, want about 40", calls)
	}
	calls = 0
	WaitUntilEvery(rec, 5*time.Second, time.Millisecond, "three calls", func() bool { calls++; return calls == 3 })
	if calls != 3 || len(rec.fatal) != 1 {
		t.Fatalf("%d calls, failures %q; want 3 calls and no new failure", calls, rec.fatal)
	}
}

// TestExclusive: while one test holds the lock, a second process asking for it
// waits, and it gets it once the first lets go. The second process is this test
// binary run again with exclusiveChild set.
func TestExclusive(t *testing.T) {
	if name := os.Getenv(exclusiveChild); name != "" {
		Exclusive(t, name)
		return
	}
	name := fmt.Sprintf("selftest-%d", os.Getpid())
	t.Cleanup(func() { _ = os.Remove(filepath.Join(os.TempDir(), "shardmatch-test-"+name+".lock")) })
	exited := make(chan error, 1)
	t.Run("holder", func(t *testing.T) {
		Exclusive(t, name) // released when this subtest ends
		child := exec.Command(os.Args[0], "-test.run=^TestExclusive$", "-test.count=1")
		child.Env = append(os.Environ(), exclusiveChild+"="+name)
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { exited <- child.Wait() }()
		// An absence cannot be polled for: give the child ample time to (wrongly)
		// take the lock and exit.
		select {
		case err := <-exited:
			t.Fatalf("the child took the lock while this test held it (exit %v)", err)
		case <-time.After(500 * time.Millisecond):
		}
	})
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the child failed once the lock was free: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child never got the lock after it was released")
	}
}

const exclusiveChild = "SHARDMATCH_TESTUTIL_EXCLUSIVE_CHILD"

// FreePort never repeats a port, stays below the ephemeral range, and the port binds.
func TestFreePort(t *testing.T) {
	low := EphemeralLow()
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if p < lowestPort || p >= low {
			t.Fatalf("port %d outside [%d, %d)", p, lowestPort, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("a free port does not bind: %v", err)
	}
	_ = l.Close()
	// A port in use is never handed out: a range holding only that port fails.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := busy.Addr().(*net.TCPAddr).Port
	if got, err := freePort(bp, bp+1); err == nil {
		t.Fatalf("port %d, in use, handed out as %d", bp, got)
	}
}
