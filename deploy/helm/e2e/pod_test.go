package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "POD_NAME": "web-0"}
	look := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"$(POD_NAME).svc:7000": "web-0.svc:7000",
		"$$(A)":                "$(A)",
		"$(MISSING)":           "$(MISSING)",
		"a$b":                  "a$b",
		"$(A":                  "$(A",
		"$(A)$(A)$":            "xx$",
		"$()":                  "$()",
	} {
		if got := Expand(in, look); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteAtomic checks the kubelet's layout and that an update swaps every file
// at once through ..data, dropping keys that are gone.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAtomic(dir, map[string]File{"a.rego": {Data: []byte("v1"), Mode: 0o644},
		"sub/b.json": {Data: []byte("{}"), Mode: 0o600}}, -1); err != nil {
		t.Fatal(err)
	}
	first, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(first, "..20") {
		t.Fatalf("..data -> %q, %v", first, err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "a.rego")); l != "..data/a.rego" {
		t.Fatalf("a.rego -> %q", l)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sub", "b.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sub/b.json: %v %v", fi, err)
	}
	if err := WriteAtomic(dir, map[string]File{"a.rego": {Data: []byte("v2"), Mode: 0o644}}, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.rego")); string(b) != "v2" {
		t.Fatalf("a.rego after update: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Fatalf("sub still there after its key went: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Fatalf("old payload %s not removed", first)
	}
}

// TestPlanChartPods resolves the rendered chart's pods as the kubelet would and
// checks what the rolling-update test depends on.
func TestPlanChartPods(t *testing.T) {
	objs := renderChart(t, 5, "info")
	f := &Facts{Namespace: namespace, ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{},
		Services: objs.Services, ServiceIPs: map[string]netip.Addr{}}
	for _, cm := range objs.ConfigMaps {
		f.ConfigMaps[cm.Name] = cm
	}
	for _, s := range objs.Secrets {
		f.Secrets[s.Name] = s
	}
	var sts = map[string]int{}
	for _, s := range objs.StatefulSets {
		sts[s.Name]++
		p, err := PlanPod(s, 4, netip.MustParseAddr("10.0.0.9"), f)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		for _, a := range p.Main.Argv {
			if strings.Contains(a, "$(") {
				t.Errorf("%s: unexpanded argument %q", p.Name, a)
			}
		}
		if s.Name != coordSTS {
			continue
		}
		fqdn := p.FQDN("cluster.local")
		if !slices.Contains(p.Main.Argv, "--raft-advertise="+fqdn+":7000") || !slices.Contains(p.Main.Argv, "--id="+p.Name) {
			t.Errorf("coordinator argv %q lacks --id/--raft-advertise for %s", p.Main.Argv, fqdn)
		}
		if tok, ok := p.Main.Lookup("SHARDMATCH_ADMIN_TOKEN"); !ok || tok != "e2e-admin-token" {
			t.Errorf("admin token from the Secret: %q %v", tok, ok)
		}
		if r := p.Main.Readiness; r == nil || r.HTTPPath != "/readyz" || r.Port != 8080 {
			t.Errorf("readiness probe %+v", r)
		}
		if len(p.Main.PreStop) == 0 || p.Main.PreStop[0] != "/usr/local/bin/coordinator" {
			t.Errorf("preStop %q", p.Main.PreStop)
		}
		if p.TerminationGrace.Seconds() < 30 {
			t.Errorf("grace %v", p.TerminationGrace)
		}
	}
	for _, name := range []string{coordSTS, natsSTS, shardSTS} {
		if sts[name] != 1 {
			t.Errorf("rendered StatefulSets %v lack %s", sts, name)
		}
	}
}

func TestHungStacksKeepsOurGoroutines(t *testing.T) {
	log := `{"msg":"shutting down"}
SIGQUIT: quit
PC=0x4 m=0 sigcode=0

goroutine 1 [chan receive]:
github.com/shardmatch/shardmatch/coordinator.(*Node).Shutdown(...)
	/src/coordinator/node.go:116

goroutine 7 [select]:
github.com/hashicorp/raft.(*Raft).run(...)

goroutine 9 [semacquire]:
sync.(*WaitGroup).Wait(...)
github.com/shardmatch/shardmatch/twophase.(*Driver).Stop(...)
`
	got := hungStacks(log)
	if !strings.Contains(got, "goroutine 1 [chan receive]") || !strings.Contains(got, "goroutine 9 [semacquire]") {
		t.Errorf("our goroutines missing:\n%s", got)
	}
	if strings.Contains(got, "goroutine 7") {
		t.Errorf("a goroutine with no shardmatch frame kept:\n%s", got)
	}
	if hungStacks(`{"msg":"bye"}`) != "" {
		t.Error("a log without a dump gave stacks")
	}
}
