package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Exclusive blocks until no other test process on this machine holds the lock
// called name, then holds it until tb ends. `go test ./...` runs packages in
// parallel processes; tests that start whole deployments of real processes and
// judge them by latency (the chaos runner's scenarios, the chart's rolling update,
// the NATS cluster failover) starve one another on a 2-core machine, and a
// starved run fails on timing, not on what it checks. Such tests take
// Exclusive(t, HeavyProcesses), so they run one at a time while everything else
// still runs in parallel.
//
// The lock is an flock(2) on a file in the temporary directory: the kernel
// releases it when the process exits, so a killed test never leaves it held.
func Exclusive(tb testing.TB, name string) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "shardmatch-test-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		tb.Fatalf("testutil: lock %s: %v", path, err)
	}
	start := time.Now()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		tb.Fatalf("testutil: lock %s: %v", path, err)
	}
	if waited := time.Since(start); waited > time.Second {
		tb.Logf("testutil: waited %s for the %q lock (another test process held it)", waited.Round(time.Millisecond), name)
	}
	tb.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

// HeavyProcesses is the Exclusive lock of the tests that run a whole deployment
// of real processes under load.
const HeavyProcesses = "heavy-processes"
