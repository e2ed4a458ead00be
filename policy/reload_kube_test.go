package policy_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/policy"
)

// kubeRule is a policy file a ConfigMap update adds: it denies every proposal
// with code (8 characters, so that versions of the file have the same size).
func kubeRule(code string) []byte {
	return []byte("package shardmatch\n\nviolation contains denial(\"" + code +
		"\", \"added by a ConfigMap update\", []) if true\n")
}

// withFile returns a copy of files with path set to b (or removed if b is nil).
func withFile(files map[string][]byte, path string, b []byte) map[string][]byte {
	out := maps.Clone(files)
	if b == nil {
		delete(out, path)
	} else {
		out[path] = b
	}
	return out
}

// TestWatchFollowsKubeletConfigMapSwap mounts the bundle as the kubelet mounts
// a ConfigMap and updates it as the kubelet does (a new timestamped directory,
// then the ..data symlink swap), polling in every intermediate state. Watch
// must pick up a new file, a changed rule (same size and mtime: only ..data
// tells), a removed file, and a file in a subdirectory (a symlinked directory),
// load exactly the visible files (never those reached through ..data or the
// timestamped directory a second time: the revision equals that of a plain
// directory holding the same files), and never fail or find the bundle
// unreadable half-way through a swap.
func TestWatchFollowsKubeletConfigMapSwap(t *testing.T) {
	ctx := context.Background()
	c := balanced5v5(t)
	polled := make(chan struct{})
	defer policy.SetTestHooks(nil, func() { polled <- struct{}{} })()
	fake := clock.NewFake(time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC))
	logs := &testutil.Buffer{}
	base := defaultBundleFiles(t)
	vol := newKubeVolume(t, base)
	e := newEngine(t, policy.Config{
		BundleDir: vol.dir, Clock: fake, PollInterval: time.Second, Signals: make(chan os.Signal),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	revBase := e.Revision()
	if want := revisionOf(t, copyDefaultBundle(t)); revBase != want {
		t.Fatalf("ConfigMap mount loads as %s, the same files in a plain dir as %s: ..data or the timestamped dir was read", revBase, want)
	}
	defer watch(t, e)()
	fake.WaitForTimers(1)
	tick := func() {
		fake.Advance(time.Second)
		<-polled
	}

	// update projects files, polling after every step of the swap, then gives
	// the watcher two polls to see the result stable, and checks that the
	// engine now runs exactly files and that they judge the balanced 5v5 with
	// wantCodes (nil: allowed). Every file gets the same mtime, as on a
	// filesystem with coarse timestamps: a rewrite of the same size is then
	// told only by the ..data symlink.
	mtime := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	update := func(name string, files map[string][]byte, wantCodes []string) {
		t.Helper()
		vol.write(files, func(step, ts string) {
			if step == kubeStepWritten {
				for p := range files {
					if err := os.Chtimes(filepath.Join(ts, filepath.FromSlash(p)), mtime, mtime); err != nil {
						t.Fatal(err)
					}
				}
			}
			tick()
		})
		tick()
		tick()
		want := revisionOf(t, plainDir(t, files))
		if got := e.Revision(); got != want {
			t.Fatalf("%s: engine runs %s, the projected files are %s", name, got, want)
		}
		v, err := e.Evaluate(ctx, c.Proposal, c.Shards)
		if err != nil || v.GetAllow() != (len(wantCodes) == 0) || !slices.Equal(codesOf(v), wantCodes) {
			t.Fatalf("%s: verdict %v %v, want denials %v", name, v, err, wantCodes)
		}
		if s := e.Stats(); s.ReloadFailures != 0 {
			t.Fatalf("%s: a reload failed during the swap: %+v", name, s)
		}
		if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Fatalf("%s: the watcher complained during the swap:\n%s", name, l)
		}
	}

	added := withFile(base, "kube.rego", kubeRule("KUBE_ONE"))
	update("new file", added, []string{"KUBE_ONE"})
	update("changed rule", withFile(added, "kube.rego", kubeRule("KUBE_TWO")), []string{"KUBE_TWO"})
	update("removed file", base, nil)
	if e.Revision() != revBase {
		t.Fatalf("back to the first files, revision %s, want %s", e.Revision(), revBase)
	}
	nested := withFile(base, "extra/kube.rego", kubeRule("KUBE_SUB"))
	update("file in a subdirectory", nested, []string{"KUBE_SUB"})
	update("subdirectory removed", base, nil)

	// Nothing changed afterwards: no more reloads.
	reloads := e.Stats().Reloads
	for range 3 {
		tick()
	}
	if s := e.Stats(); s.Reloads != reloads {
		t.Fatalf("reloads after the volume settled: %+v, was %d", s, reloads)
	}
	entries, err := os.ReadDir(vol.dir)
	if err != nil {
		t.Fatal(err)
	}
	var hidden int
	for _, d := range entries {
		if strings.HasPrefix(d.Name(), "..") {
			hidden++
		}
	}
	if hidden != 2 { // ..data and one timestamped dir: the helper cleaned up as the kubelet does
		t.Fatalf("volume has %d ..-entries, want 2: %v", hidden, entries)
	}
}

// TestReloadAtEveryStepOfAKubeletSwap reloads (as SIGHUP does) in every state
// the volume passes through during an update that adds, changes and removes
// files at once: no state may fail to load, the names already removed dangling
// included.
func TestReloadAtEveryStepOfAKubeletSwap(t *testing.T) {
	ctx := context.Background()
	base := defaultBundleFiles(t)
	v1 := withFile(withFile(base, "a.rego", kubeRule("KUBE_ONE")), "extra/b.rego", kubeRule("KUBE_SUB"))
	v2 := withFile(withFile(base, "a.rego", kubeRule("KUBE_TWO")), "c.rego", kubeRule("KUBE_NEW"))
	vol := newKubeVolume(t, v1)
	e := newEngine(t, policy.Config{BundleDir: vol.dir})
	if want := revisionOf(t, plainDir(t, v1)); e.Revision() != want {
		t.Fatalf("revision %s, want %s", e.Revision(), want)
	}
	var steps []string
	vol.write(v2, func(step, _ string) {
		steps = append(steps, step)
		if err := e.Reload(ctx); err != nil {
			t.Fatalf("reload after step %q: %v", step, err)
		}
	})
	if want := []string{kubeStepWritten, kubeStepSwapped, kubeStepLinked, kubeStepPruned, kubeStepCleaned}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if want := revisionOf(t, plainDir(t, v2)); e.Revision() != want {
		t.Fatalf("after the swap: revision %s, want %s", e.Revision(), want)
	}
}
