package doctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuiltBinaries()
	os.Exit(code)
}

// repoRoot is the module's root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// readDoc reads a file of the repository (README.md, docs/x.md).
func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The binaries are built once per test process, as the README does
// (`go build -o bin/ ./cmd/...`, without -race: the processes run at full speed), into
// binDir, which TestMain removes.
var (
	binOnce             sync.Once
	binDir              string
	binErr              error
	removeBuiltBinaries = func() {}
)

// binaries returns the directory holding the freshly built coordinator and shardsvc.
func binaries(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shardmatch-doctest-bin-")
		if binErr = err; err != nil {
			return
		}
		removeBuiltBinaries = func() { _ = os.RemoveAll(dir) }
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build -o %s/ ./cmd/...: %v\n%s", dir, err, out)
			return
		}
		binDir = dir
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}
