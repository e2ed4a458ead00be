package chaosmesh

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/chaos/scenario"
)

var update = flag.Bool("update", false, "rewrite deploy/chaos-mesh from the shipped scenarios")

// deployDir is where the generated manifests are committed.
var deployDir = filepath.Join("..", "..", "deploy", "chaos-mesh")

// TestCommittedManifestsUpToDate is the golden test: deploy/chaos-mesh holds exactly
// what the generator writes for the shipped scenarios. Fix a failure with
// `go generate ./chaos/chaosmesh` (or go test -update).
func TestCommittedManifestsUpToDate(t *testing.T) {
	if *update {
		if _, _, err := WriteFiles(deployDir, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Files(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.Join(deployDir, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./chaos/chaosmesh)", p, err)
			continue
		}
		if !bytes.Equal(got, files[p]) {
			t.Errorf("deploy/chaos-mesh/%s is stale: run go generate ./chaos/chaosmesh", p)
		}
	}
	stale, err := Stale(deployDir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("generated files with no scenario: %v (run go generate ./chaos/chaosmesh)", stale)
	}
}

// TestManifestsDecodeStrictly decodes every committed document into the mirrored CRD
// types (unknown fields fail) and applies the webhook rules.
func TestManifestsDecodeStrictly(t *testing.T) {
	c := &crdChecker{release: DefaultRelease, topologies: mustTopologies()}
	files, err := Files(Options{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		ks, err := c.checkFile(files[p])
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		for _, k := range ks {
			kinds[k]++
		}
	}
	for _, k := range []string{KindNetworkChaos, KindPodChaos, KindTimeChaos, KindSchedule, KindWorkflow} {
		if kinds[k] == 0 {
			t.Errorf("no %s emitted for the shipped scenarios: %v", k, kinds)
		}
	}
}

// TestCRDCheckerCatchesBrokenManifests: the strict decoding and the rules reject
// manifests that Chaos Mesh would reject or misread.
func TestCRDCheckerCatchesBrokenManifests(t *testing.T) {
	c := &crdChecker{release: DefaultRelease, topologies: mustTopologies()}
	all, err := scenario.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	render := func(name string, workflow bool) string {
		f := Manifests
		if workflow {
			f = Workflow
		}
		b, err := f(all[name], Options{})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct {
		name, file, old, new string
	}{
		{"misspelt field", render("shard-partition", false), "direction: both", "directoin: both"},
		{"both without target", render("packet-loss", false), "direction: to", "direction: both"},
		{"unknown action", render("shard-partition", false), "action: partition", "action: partitoin"},
		{"loss without its parameters", render("packet-loss", false), "action: loss", "action: partition"},
		{"bad percentage", render("packet-loss", false), `loss: "2"`, `loss: "two"`},
		{"bad mode", render("shard-kill", false), "mode: all", "mode: every"},
		{"pod-failure without duration", render("pause-leader", false), "  duration: 6s\n", ""},
		{"pod out of range", render("shard-kill", false), "shardmatch-shard-0", "shardmatch-shard-7"},
		{"other release", render("shard-kill", false), "instance: shardmatch", "instance: other"},
		{"bad time offset", render("clock-skew-forward", false), "timeOffset: 2h0m0s", "timeOffset: soon"},
		{"schedule type mismatch", render("leader-kill-loop", false), "type: PodChaos", "type: NetworkChaos"},
		{"schedule not periodic", render("leader-kill-loop", false), "'@every 6s'", "'@hourly'"},
		{"workflow child missing", render("leader-partition", true), "- f0-wait\n", "- f9-wait\n"},
		{"workflow template unreachable", render("leader-partition", true), "        - f1-run\n", ""},
		{"suspend without deadline", render("leader-partition", true), "templateType: Suspend\n      deadline: 8s", "templateType: Suspend"},
		{"bad name", render("shard-kill", false), "name: shard-kill-f0-kill", "name: Shard_Kill"},
		{"wrong api version", render("shard-kill", false), "chaos-mesh.org/v1alpha1", "chaos-mesh.org/v2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.checkFile([]byte(tc.file)); err != nil {
				t.Fatalf("the unbroken file fails: %v", err)
			}
			if !strings.Contains(tc.file, tc.old) {
				t.Fatalf("%q not in the file", tc.old)
			}
			broken := strings.Replace(tc.file, tc.old, tc.new, 1)
			_, err := c.checkFile([]byte(broken))
			switch {
			case err == nil:
				t.Errorf("accepted:\n%s", broken)
			case strings.Contains(err.Error(), "yaml: line"):
				t.Errorf("the case broke the YAML itself, not the manifest: %v", err)
			}
		})
	}
}

func parse(t *testing.T, src string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSelectorsAndNotes(t *testing.T) {
	s := parse(t, `
name: sel
duration: 30s
topology: {coordinators: 3, shards: 2}
faults:
  - {kind: partition, at: 2s, for: 2s, groups: [[coordinators], [nats]]}
  - {kind: partition, at: 6s, for: 2s, groups: [[coordinators, nats], [shards]]}
  - {kind: loss, at: 10s, for: 2s, targets: [all], percent: 3}
  - {kind: pause, at: 14s, for: 2s, targets: [leader]}
  - {kind: latency, at: 18s, for: 2s, link: [s1, nats], latency: 40ms, jitter: 5ms}
  - {kind: clock-drift, at: 22s, targets: [c2], rate: 1.005}
`)
	out, err := Manifests(s, Options{Namespace: "games", Release: "sm"})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"app.kubernetes.io/component: coordinator\n", "app.kubernetes.io/component: nats\n", // whole components by label
		"key: app.kubernetes.io/component\n", // two whole components: an expression
		"statefulset.kubernetes.io/pod-name: sm-shardmatch-coordinator-0", "[leader] -> sm-shardmatch-coordinator-0", "POST /v1/leader/transfer",
		"statefulset.kubernetes.io/pod-name: sm-shardmatch-shard-0", "app.kubernetes.io/instance: sm\n", "latency: 40ms", "jitter: 5ms",
		"action: pod-failure", "PodChaos has no pause", "namespace: games", "- games",
		"faults[5]", "no Chaos Mesh equivalent",
		"shardmatch.io/start-after: 18s",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
	if strings.Contains(text, "clock-drift\nspec") || strings.Contains(text, "rate: 1.005") {
		t.Error("clock drift must be skipped, not rendered")
	}
	c := &crdChecker{release: "sm", topologies: map[string]scenario.Topology{"sel": s.Topology}}
	kinds, err := c.checkFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{KindNetworkChaos, KindNetworkChaos, KindNetworkChaos, KindPodChaos, KindNetworkChaos}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}

func TestPartitionOfThreeGroupsCutsEveryPair(t *testing.T) {
	s := parse(t, "name: three\nduration: 10s\nfaults: [{kind: partition, at: 1s, for: 1s, groups: [[c1], [c2], [c3]]}]\n")
	out, err := Manifests(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range []string{"f0-partition-0-1", "f0-partition-0-2", "f0-partition-1-2"} {
		if !strings.Contains(string(out), pair) {
			t.Errorf("no NetworkChaos %s", pair)
		}
	}
}

func TestWorkflowTiming(t *testing.T) {
	s := parse(t, `
name: timing
duration: 40s
faults:
  - {kind: kill, at: 6s, for: 2s, every: 6s, count: 5, targets: [leader]}
  - {kind: partition, at: 0s, for: 5s, groups: [[c1], [c2, c3]]}
  - {kind: clock-skew, at: 20s, targets: [c2], offset: -2h}
`)
	out, err := Workflow(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"templateType: Parallel\n      deadline: 40s",                      // the entry bounds the whole run
		"name: f0-kill\n      templateType: Schedule\n      deadline: 32s", // 5 runs 6s apart, last healed 2s later
		"- f0-kill\n", // first run one period after start = at 6s: no wait
		"name: f1-partition-0-1\n      templateType: NetworkChaos\n      deadline: 5s",
		"name: f2-wait\n      templateType: Suspend\n      deadline: 20s",
		"timeOffset: -2h0m0s", "deadline: 20s\n      timeChaos", // skew until the workload ends
	} {
		if !strings.Contains(text, want) {
			t.Errorf("workflow lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "f0-wait") || strings.Contains(text, "f1-wait") {
		t.Error("a fault at its first possible moment needs no Suspend")
	}
	c := &crdChecker{release: DefaultRelease, topologies: map[string]scenario.Topology{"timing": s.Topology}}
	if _, err := c.checkFile(out); err != nil {
		t.Error(err)
	}
}

func TestRefusals(t *testing.T) {
	all, err := scenario.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Manifests(all["bites-deliver-before-log"], Options{}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("bites scenario: %v, want ErrUnsafe", err)
	}
	bad := *all["leader-partition"]
	bad.Faults = append([]scenario.Fault(nil), bad.Faults...)
	bad.Faults[0].Groups = [][]string{{"leader"}, {"coordinators"}}
	if _, err := Workflow(&bad, Options{}); !errors.Is(err, scenario.ErrInvalid) {
		t.Errorf("invalid scenario: %v, want scenario.ErrInvalid", err)
	}
}

func TestObjName(t *testing.T) {
	long := strings.Repeat("a", 50)
	if n := objName(long, "f12-partition-0-1"); len(n) > 63 || !strings.HasSuffix(n, "-f12-partition-0-1") {
		t.Errorf("objName = %q (%d)", n, len(n))
	}
}

func TestWriteFilesRemovesOnlyStaleGenerated(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "README.md")
	mine := filepath.Join(dir, "hand-written.yaml")
	gone := filepath.Join(dir, "old-scenario.yaml")
	for p, body := range map[string]string{keep: "docs", mine: "kind: Foo\n", gone: generatedMark + " from old\n"} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	written, removed, err := WriteFiles(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := scenario.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range all {
		if !s.Bites() {
			want += 2 // the objects and the workflow
		}
	}
	if len(written) != want || !slices.Equal(removed, []string{"old-scenario.yaml"}) {
		t.Errorf("wrote %d (want %d), removed %v", len(written), want, removed)
	}
	for _, p := range []string{keep, mine} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
	written, _, err = WriteFiles(dir, Options{})
	if err != nil || len(written) != 0 {
		t.Errorf("second run rewrote %v (%v)", written, err)
	}
}

var chartDir = filepath.Join("..", "..", "deploy", "helm", "shardmatch", "templates", "chaos")

// TestCommittedChartTemplatesUpToDate: the chart's templates/chaos holds exactly what
// ChartFiles writes (`go generate ./chaos/chaosmesh`). The chart's own tests
// (deploy/helm/render) render them and check their selectors against the release.
func TestCommittedChartTemplatesUpToDate(t *testing.T) {
	if *update {
		if _, _, err := WriteChartFiles(chartDir); err != nil {
			t.Fatal(err)
		}
	}
	files, err := ChartFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.Join(chartDir, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, files[p]) {
			t.Errorf("deploy/helm/shardmatch/templates/chaos/%s is stale or missing (%v): run go generate ./chaos/chaosmesh", p, err)
		}
	}
	stale, err := Stale(chartDir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("generated chart templates with no scenario: %v (run go generate ./chaos/chaosmesh)", stale)
	}
}

func TestFullname(t *testing.T) {
	for rel, want := range map[string]string{"shardmatch": "shardmatch", "prod-shardmatch": "prod-shardmatch", "sm": "sm-shardmatch"} {
		if got := Fullname(rel); got != want {
			t.Errorf("Fullname(%q) = %q, want %q", rel, got, want)
		}
	}
}

func TestChartTemplatesHaveNoPlaceholders(t *testing.T) {
	files, err := ChartFiles()
	if err != nil {
		t.Fatal(err)
	}
	for p, body := range files {
		for _, ph := range []string{phRelease, phFullname, phNamespace} {
			if bytes.Contains(body, []byte(ph)) {
				t.Errorf("%s still holds the placeholder %s", p, ph)
			}
		}
		if !bytes.HasPrefix(body, []byte(chartMark)) {
			t.Errorf("%s does not start with the generated mark", p)
		}
	}
}
