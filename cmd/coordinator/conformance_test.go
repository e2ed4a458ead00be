package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/twophase/conformance"
)

// The harness as a binary against the reference shard as a binary, on a NATS server of
// their own: every check passes, recovery included (the restart command asks the test
// to kill -9 the shard and start it again on its journal).
func TestMultiProcessConformance(t *testing.T) {
	testutil.Exclusive(t, testutil.HeavyProcesses)
	d := newDeployment(t)
	d.startNATS()
	restartFlag := filepath.Join(d.dir, "restart-requested")
	var players []string
	for i := range conformance.MinPlayers + 2 {
		players = append(players, fmt.Sprintf("s1-p%05d", i))
	}
	harness := d.add(&proc{name: "conformance", bin: d.coord, args: []string{"conformance", "--nats-url", d.natsURL,
		"--shard", "s1", "--players", strings.Join(players, ","), "--silence", "1s", "--register-timeout", "30s",
		"--restart-cmd", "touch " + restartFlag, "-o", "json"}})
	shard := d.startShard("s1", "--always-available")
	deadline := time.Now().Add(2 * time.Minute)
	for harness.running() && time.Now().Before(deadline) {
		if _, err := os.Stat(restartFlag); err == nil {
			_ = os.Remove(restartFlag)
			shard.kill()
			shard.start(t)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code := harness.wait(t, time.Second)
	out := harness.out.String()
	var rep conformance.Report
	if i := strings.Index(out, "{"); i < 0 {
		t.Fatalf("exit %d, no report:\n%s", code, out)
	} else if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("exit %d, output not a report: %v\n%s", code, err, out)
	}
	for _, r := range rep.Results {
		if r.Status != conformance.Pass {
			t.Errorf("%s: %s %s", r.Name, r.Status, r.Detail)
		}
	}
	if code != 0 || len(rep.Results) != 13 {
		t.Errorf("exit %d with %d results, want 0 and 13", code, len(rep.Results))
	}
}
