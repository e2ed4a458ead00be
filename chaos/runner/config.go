package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// Errors returned by Run.
var (
	// ErrConfig: the Config is unusable (no scenario, no binary); nothing was started.
	ErrConfig = errors.New("runner: bad config")
	// ErrSetup: the deployment did not come up (a process died, no leader, a shard
	// never registered). The run's logs say why; nothing was checked.
	ErrSetup = errors.New("runner: deployment did not come up")
)

// Config is one run of one scenario.
type Config struct {
	// Scenario is the run's scenario. Required.
	Scenario *scenario.Scenario
	// Seed drives every random choice of the run (workload, "follower" picks, the
	// transport fault hooks), so a run can be replayed.
	Seed int64
	// ReportDir receives report.json, report.md, timeline.svg and history.json, and
	// the run's working files (process logs, data dirs) under work/. Required.
	ReportDir string
	// KeepWork keeps ReportDir/work after a passing run (a failing run always keeps it).
	KeepWork bool
	// CoordinatorBin and ShardsvcBin are the binaries to run. Empty CoordinatorBin:
	// this executable. Empty ShardsvcBin: "shardsvc" beside CoordinatorBin, else built
	// with `go build` from the module in the working directory.
	CoordinatorBin, ShardsvcBin string
	// Progress receives one status line a second while the run goes (nil: none).
	Progress io.Writer
	// Logger receives the runner's own log (nil: discarded).
	Logger *slog.Logger
	// Secure runs every process as a secured production deployment does: NATS in
	// JWT operator mode with each process on its own role's credentials, commands
	// signed by the coordinators and verified by the shards.
	Secure bool
	// Prefix tags every namespace, link and nftables table of the run (<= 6 chars;
	// default derived from the process id).
	Prefix string
}

// binaries resolves CoordinatorBin and ShardsvcBin, building shardsvc into dir if
// that is the only way to get it.
func (c *Config) binaries(dir string) error {
	if c.CoordinatorBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: no coordinator binary: %v", ErrConfig, err)
		}
		c.CoordinatorBin = exe
	}
	if c.ShardsvcBin != "" {
		return nil
	}
	beside := filepath.Join(filepath.Dir(c.CoordinatorBin), "shardsvc")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		c.ShardsvcBin = beside
		return nil
	}
	out := filepath.Join(dir, "shardsvc")
	cmd := exec.Command("go", "build", "-o", out, "github.com/shardmatch/shardmatch/cmd/shardsvc")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: no shardsvc beside %s and `go build` of it failed (give --shardsvc-bin): %v\n%s",
			ErrConfig, c.CoordinatorBin, err, b)
	}
	c.ShardsvcBin = out
	return nil
}

// Timing of the deployment the runner starts. Raft timeouts are short so that a lost
// leader is replaced well within the scenarios' resume bound.
const (
	raftHeartbeat   = 500 * time.Millisecond
	raftElection    = 500 * time.Millisecond
	minRetention    = 30 * time.Minute // keep every txn for the final-state check (see retentionFor)
	readyTimeout    = 60 * time.Second
	proposeTimeout  = 10 * time.Second
	pollEvery       = 250 * time.Millisecond
	natsPort        = 4222
	raftPort        = 7000
	coordAdminPort  = 8080
	shardAdminPort  = 9090
	settleMinimum   = 5 * time.Second
	leaderLookupFor = 10 * time.Second
)

// retentionFor is how long the coordinators keep finished txns in a run of sc:
// past the whole run and its settle time, so that the final state holds every
// txn of the run for the checkers.
func retentionFor(sc *scenario.Scenario) time.Duration {
	return max(minRetention, time.Duration(sc.Duration)+time.Duration(sc.Settle)+10*time.Minute)
}
