package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/scenario"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// bins holds the coordinator and shardsvc binaries built once for the tests that run
// real deployments; empty when those tests cannot run here.
var bins struct {
	coordinator, shardsvc string
	why                   string // why the deployment tests skip
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardmatch-runner-bin-")
	if err != nil {
		panic(err)
	}
	switch {
	case os.Geteuid() != 0:
		bins.why = "needs root for network namespaces and nftables"
	case !onPath("ip", "nft"):
		bins.why = "needs the ip (iproute2) and nft (nftables) commands"
	default:
		for _, b := range []struct {
			out *string
			pkg string
		}{
			{&bins.coordinator, "../../cmd/coordinator"}, {&bins.shardsvc, "../../cmd/shardsvc"}} {
			path := filepath.Join(dir, filepath.Base(b.pkg))
			if out, err := exec.Command("go", "build", "-o", path, b.pkg).CombinedOutput(); err != nil {
				panic(fmt.Sprintf("build %s: %v\n%s", b.pkg, err, out))
			}
			*b.out = path
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func onPath(cmds ...string) bool {
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			return false
		}
	}
	return true
}

func needDeployment(t *testing.T) {
	t.Helper()
	if bins.why != "" {
		t.Skip(bins.why)
	}
	testutil.Exclusive(t, testutil.HeavyProcesses)
}

func runScenario(t *testing.T, yaml string, seed int64) *Result {
	t.Helper()
	sc, err := scenario.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return runLoaded(t, sc, seed)
}

func runLoaded(t *testing.T, sc *scenario.Scenario, seed int64) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	res, err := Run(ctx, Config{Scenario: sc, Seed: seed, ReportDir: dir, CoordinatorBin: bins.coordinator,
		ShardsvcBin: bins.shardsvc, KeepWork: true, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("run: %v (logs in %s)", err, filepath.Join(dir, "work", "logs"))
	}
	for _, f := range []string{"report.json", "report.md", "timeline.svg", "history.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report file: %v", err)
		}
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// TestLeaderPartitionRunsClean runs a short leader partition against real processes
// in namespaces: the verdict is clean, commits resume after the heal, every txn
// terminates.
func TestLeaderPartitionRunsClean(t *testing.T) {
	needDeployment(t)
	res := runScenario(t, `
name: test-leader-partition
description: the leader is cut off from the other coordinators, then healed
duration: 14s
settle: 20s
topology: {coordinators: 3, shards: 2, players_per_shard: 120}
workload: {rate: 30, in_flight: 8, match_ttl: 4s, abandon_share: 0.1}
faults:
  - {kind: partition, at: 4s, for: 4s, groups: [[leader], [followers]]}
`, 1)
	sum := res.Summary
	t.Logf("%s", sum.Line())
	if !sum.Pass || len(res.Errors) > 0 {
		t.Fatalf("run failed: %s; errors %v; report in %s", sum.Line(), res.Errors, res.ReportDir)
	}
	if sum.Committed == 0 {
		t.Fatal("nothing committed")
	}
}

// TestCheckersBite runs the shipped checker-bites scenarios: a coordinator broken on
// purpose (decisions sent before they are logged; lease expiry on the wall clock) must
// be reported with the violations the scenario expects, or the checkers prove nothing.
func TestCheckersBite(t *testing.T) {
	needDeployment(t)
	for _, tc := range []struct {
		name string
		want []string // at least one of these invariants must be reported
	}{
		{"bites-deliver-before-log", []string{history.I1, history.I3}},
		{"bites-wallclock-expiry", []string{history.I7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := scenario.Lookup(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			res := runLoaded(t, sc, 1)
			var found []string
			for _, v := range res.Summary.Violations {
				found = append(found, v.Invariant)
			}
			if !slices.ContainsFunc(tc.want, func(id string) bool { return slices.Contains(found, id) }) {
				t.Fatalf("the unsafe coordinator went unnoticed: violations %v, want one of %v; report in %s", found, tc.want, res.ReportDir)
			}
			if !res.Summary.Pass {
				t.Fatalf("verdict: %s", res.Summary.Line())
			}
		})
	}
}
