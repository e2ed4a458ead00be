package shardsvc

import (
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

func TestStatusLineAndSummary(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	prev := Stats{Elapsed: time.Second, Proposed: 100}
	cur := Stats{Elapsed: 2 * time.Second, Proposed: 300, Committed: 250, Aborted: map[string]uint64{"PLAYER_LEASED": 40, "POLICY_DENIED": 10},
		Latency: &h, InFlight: 3}
	line := StatusLine(cur, prev, "c2")
	for _, want := range []string{"committed 250", "aborted 50 (PLAYER_LEASED 40, POLICY_DENIED 10)", "200/s", "p50 49.9ms", "p99 98.8ms", "leader c2", "in-flight 3"} {
		if !strings.Contains(line, want) {
			t.Errorf("status line %q lacks %q", line, want)
		}
	}
	s := NewSummary(cur, 200, AuditReport{InDoubt: 1}, "c2", 0, true)
	if s.Rate != 150 || s.P50Ms < 49.5 || s.P50Ms > 50.5 || s.Clean || s.Aborted["PLAYER_LEASED"] != 40 {
		t.Errorf("summary %+v", s)
	}
	var b strings.Builder
	s.WriteText(&b)
	if !strings.Contains(b.String(), "VIOLATIONS FOUND") {
		t.Errorf("summary text:\n%s", b.String())
	}
}

func TestShowStatus(t *testing.T) {
	fake := clock.NewFake(epoch)
	ws := testWorlds(t, fake, 10)
	d := testDriver(t, fake, newFakeCoordinator(ws...), ws, nil)
	for _, inPlace := range []bool{false, true} {
		var buf testutil.Buffer
		stop := ShowStatus(&buf, d, time.Second, inPlace, func() string { return "c1" })
		fake.WaitForTimers(1)
		fake.Advance(time.Second)
		testutil.WaitUntil(t, 5*time.Second, "the status line naming the leader", func() bool { return strings.Contains(buf.String(), "leader c1") })
		stop()
		out := buf.String()
		if inPlace != strings.HasPrefix(out, "\r") || !strings.HasSuffix(out, "\n") {
			t.Errorf("inPlace=%v: %q", inPlace, out)
		}
	}
}
