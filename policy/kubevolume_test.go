package policy_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubeVolume reproduces, step by step, how the kubelet projects a ConfigMap (or
// Secret, or projected volume) into a pod: its AtomicWriter (pkg/volume/util).
// The real files live in a hidden timestamped directory
// "..2026_12_04_20_00_00.<random>"; the symlink "..data" points at it; every
// visible top-level name x is a symlink "..data/x". An update writes a whole new
// timestamped directory, points a new symlink "..data_tmp" at it, renames that
// over "..data" (the atomic switch), creates the visible links of new names,
// removes the visible links of names gone, and deletes the old directory.
type kubeVolume struct {
	t   testing.TB
	dir string
}

// Steps of kubeVolume.write, in the order the kubelet takes them; write calls
// its step callback after each (with the new timestamped directory), so that a
// test can look at the volume in every state a reader may see.
const (
	kubeStepWritten = "written" // new timestamped dir written, ..data unchanged
	kubeStepSwapped = "swapped" // ..data points at the new dir; new names not yet visible, old names dangle
	kubeStepLinked  = "linked"  // visible links of new names created
	kubeStepPruned  = "pruned"  // visible links of removed names deleted
	kubeStepCleaned = "cleaned" // old timestamped dir deleted
)

// newKubeVolume projects files (slash paths relative to the volume) into a new
// temp dir and returns the volume.
func newKubeVolume(t testing.TB, files map[string][]byte) *kubeVolume {
	t.Helper()
	v := &kubeVolume{t: t, dir: t.TempDir()}
	v.write(files, nil)
	return v
}

// write projects files as the new content of the volume, exactly as the
// kubelet's AtomicWriter.Write does, calling step (if not nil) after each step
// with the step's name and the new timestamped directory.
// It returns false, writing nothing, when the payload is what is already there.
func (v *kubeVolume) write(files map[string][]byte, step func(name, tsDir string)) bool {
	t := v.t
	t.Helper()
	if step == nil {
		step = func(string, string) {}
	}
	dataLink := filepath.Join(v.dir, "..data")
	oldTs, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var remove []string // visible top-level names to delete after the switch
	if oldTs != "" {
		old := v.read(filepath.Join(v.dir, oldTs))
		if maps.EqualFunc(old, files, func(a, b []byte) bool { return string(a) == string(b) }) {
			return false
		}
		keep := map[string]bool{}
		for p := range files {
			keep[strings.SplitN(p, "/", 2)[0]] = true
		}
		for p := range old {
			if top := strings.SplitN(p, "/", 2)[0]; !keep[top] {
				remove = append(remove, top)
			}
		}
	}

	ts, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		full := filepath.Join(ts, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step(kubeStepWritten, ts)

	tmpLink := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		t.Fatal(err)
	}
	step(kubeStepSwapped, ts)

	for p := range files {
		top := strings.SplitN(p, "/", 2)[0]
		visible := filepath.Join(v.dir, top)
		if _, err := os.Readlink(visible); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", top), visible); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
		}
	}
	step(kubeStepLinked, ts)

	for _, top := range remove {
		if err := os.Remove(filepath.Join(v.dir, top)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	step(kubeStepPruned, ts)

	if oldTs != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, oldTs)); err != nil {
			t.Fatal(err)
		}
	}
	step(kubeStepCleaned, ts)
	return true
}

// read returns every regular file under dir by slash path.
func (v *kubeVolume) read(dir string) map[string][]byte {
	v.t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

// plainDir writes files into a new temp dir as ordinary files: the bundle a
// kubeVolume of the same files must load as.
func plainDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// defaultBundleFiles returns the embedded default bundle's files by path.
func defaultBundleFiles(t testing.TB) map[string][]byte {
	t.Helper()
	return (&kubeVolume{t: t}).read(copyDefaultBundle(t))
}
