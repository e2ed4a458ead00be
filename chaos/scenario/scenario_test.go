package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/scenarios"
)

// shipped are the scenarios the issue asks for; bites are the checker-bites runs.
var (
	shipped = []string{"leader-partition", "minority-partition", "shard-partition", "coordinator-nats-partition",
		"bridge-partition", "clock-skew-forward", "clock-skew-backward", "clock-drift", "leader-kill-loop", "leader-kill-loop-load",
		"shard-kill", "pause-leader", "packet-loss", "message-duplication", "nats-restart", "hot-contention",
		"nats-latency"}
	bites = []string{"bites-deliver-before-log", "bites-wallclock-expiry"}
)

func TestBuiltinScenarios(t *testing.T) {
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(shipped), bites...)
	if len(all) != len(want) {
		t.Errorf("%d builtins, want %d", len(all), len(want))
	}
	names := BuiltinNames()
	if got, w := names[len(names)-len(bites):], bites; !slices.Equal(got, w) {
		t.Errorf("BuiltinNames ends with %v, want the hidden ones %v last", got, w)
	}
	for _, name := range want {
		s, ok := all[name]
		if !ok {
			t.Errorf("missing builtin %s", name)
			continue
		}
		if s.Description == "" {
			t.Errorf("%s: no description", name)
		}
		if d := s.Duration.D(); d < 30*time.Second || d > 45*time.Second {
			t.Errorf("%s: workload %s, want 30-45s so a run stays under a minute", name, d)
		}
		raw, err := scenarios.FS.ReadFile(name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), "# "+name) || !strings.Contains(string(raw), "Proves") {
			t.Errorf("%s: the file must open with a comment saying what it proves", name)
		}
		isBites := slices.Contains(bites, name)
		if s.Bites() != isBites || s.Hidden != isBites {
			t.Errorf("%s: Bites()=%v Hidden=%v, want both %v", name, s.Bites(), s.Hidden, isBites)
		}
		if isBites != (len(s.Expect.Violations) > 0) {
			t.Errorf("%s: expect %v", name, s.Expect.Violations)
		}
	}
	if got := all["packet-loss"]; got.Checks.MinCommitRatio != 0.99995 || got.Workload.HotShare != 0 {
		t.Errorf("packet-loss: ratio %g hot share %g", got.Checks.MinCommitRatio, got.Workload.HotShare)
	}
	if got := all["hot-contention"]; got.Workload.HotShare != 0.5 || len(got.Faults) != 0 {
		t.Errorf("hot-contention: hot share %g, %d faults", got.Workload.HotShare, len(got.Faults))
	}
}

func TestDefaultsAndExplicitZero(t *testing.T) {
	s, err := Parse([]byte(`
name: tiny
duration: 10s
workload: {rate: 5, renew_every: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := New()
	want.Name, want.Duration = "tiny", Duration(10*time.Second)
	want.Workload.Rate, want.Workload.RenewEvery = 5, 0
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	if !slices.Equal(s.Checks.Invariants, history.Invariants) {
		t.Errorf("default invariants %v", s.Checks.Invariants)
	}
}

func TestStrictDecoding(t *testing.T) {
	for name, src := range map[string]string{
		"unknown top-level field": "name: x\nduration: 10s\ndurration: 5s\n",
		"unknown nested field":    "name: x\nduration: 10s\ntopology: {coordinator: 3}\n",
		"unknown fault field":     "name: x\nduration: 10s\nfaults: [{kind: kill, at: 1s, for: 1s, target: [c1]}]\n",
		"duration without unit":   "name: x\nduration: 10\n",
		"bad duration":            "name: x\nduration: ten seconds\n",
		"wrong type":              "name: x\nduration: 10s\ntopology: {shards: many}\n",
		"two documents":           "name: x\nduration: 10s\n---\nname: y\nduration: 10s\n",
		"empty":                   "",
	} {
		_, err := Parse([]byte(src))
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err = %v, want ErrSyntax", name, err)
		}
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10s": 10 * time.Second, "-2h": -2 * time.Hour,
		"1500ms": 1500 * time.Millisecond, "0": 0} {
		var d Duration
		if err := yaml.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalJSON(b); err != nil || back != d {
			t.Errorf("json round trip of %s: %s %v", in, back, err)
		}
	}
}

// TestRoundTrip: a marshalled scenario parses back to what marshals the same.
func TestRoundTrip(t *testing.T) {
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range all {
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		again, err := yaml.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(out) {
			t.Errorf("%s: round trip changed it:\n%s\n%s", name, out, again)
		}
	}
}

func TestWorlds(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 6, 5: 80} {
		top := Topology{Coordinators: n, Shards: 1}
		ws := top.Worlds()
		if len(ws) != want {
			t.Errorf("%d coordinators: %d worlds, want %d", n, len(ws), want)
		}
		for _, w := range ws {
			min := top.Resolve([]string{SelMinority}, w)
			maj := top.Resolve([]string{SelMajorityWithoutLeader}, w)
			lead := top.Resolve([]string{SelLeader}, w)
			if len(min) != MinoritySize(n) || !slices.Contains(min, lead[0]) {
				t.Errorf("%s: minority %v", w, min)
			}
			if len(min)+len(maj) != n || len(intersect(min, maj)) > 0 {
				t.Errorf("%s: minority %v and majority %v must split the coordinators", w, min, maj)
			}
			if n > 2 && len(min) >= len(maj) {
				t.Errorf("%s: minority %v is not smaller than %v", w, min, maj)
			}
		}
	}
	got := Topology{Coordinators: 3, Shards: 2}.Resolve([]string{"all"}, World{Leader: 1})
	if want := []string{"nats", "c1", "c2", "c3", "s1", "s2"}; !slices.Equal(got, want) {
		t.Errorf("all = %v, want %v", got, want)
	}
}

func TestLookupAndLoad(t *testing.T) {
	s, err := Lookup("leader-partition")
	if err != nil || s.Name != "leader-partition" {
		t.Fatalf("builtin lookup: %v %v", s, err)
	}
	file := filepath.Join(t.TempDir(), "my-run.yaml")
	if err := os.WriteFile(file, []byte("duration: 12s\nfaults: [{kind: pause, at: 2s, for: 3s, targets: [s1]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Lookup(file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "my-run" || s.Faults[0].Kind != FaultPause {
		t.Errorf("loaded %+v", s)
	}
	if _, err := Lookup("no-such-scenario"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown name: %v, want ErrNotFound", err)
	}
	if _, err := loadFS(os.DirFS(t.TempDir())); err != nil {
		t.Errorf("empty dir: %v", err)
	}
}

// TestBuiltinNameMustMatchFile: a builtin whose name differs from its file is refused.
func TestBuiltinNameMustMatchFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("name: b\nduration: 5s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFS(os.DirFS(dir)); !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
}
