package render

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadValuesRejected: every values file in deploy/helm/testdata/bad is refused,
// with the message its first line announces ("# want: ...").
func TestBadValuesRejected(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(TestdataDir(), "bad", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad values files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			want := wantLine(t, f)
			_, err := Render(Options{ValuesFiles: []string{f}})
			if !errors.Is(err, ErrValues) {
				t.Fatalf("err = %v, want ErrValues", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant it to say %q", err, want)
			}
		})
	}
}

// TestUnsafeReplicaCountAllowed: the escape hatch lets a development cluster of 1 or
// an even count through.
func TestUnsafeReplicaCountAllowed(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		_, err := Render(Options{Values: map[string]any{"coordinator": map[string]any{
			"replicas": n, "bootstrapReplicas": 1, "allowUnsafeReplicaCount": true}}})
		if err != nil {
			t.Errorf("replicas %d with allowUnsafeReplicaCount: %v", n, err)
		}
	}
}

func wantLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "# want: ") {
		t.Fatalf("%s: the first line must be `# want: <message>`", path)
	}
	return strings.TrimPrefix(sc.Text(), "# want: ")
}
