package render

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeUpToDate: the chart's README.md is what `go generate ./deploy/helm/...`
// writes from README.md.gotmpl and values.yaml.
func TestReadmeUpToDate(t *testing.T) {
	want, err := Readme(ChartDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(ChartDir(), "README.md"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("deploy/helm/shardmatch/README.md is stale (%v): run go generate ./deploy/helm/...", err)
	}
}

// TestEveryValueDocumented: each value has a `# --` description (or sits under one),
// and the supplied-object values the reference check relies on are in the table.
func TestEveryValueDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(ChartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	missing, err := Undocumented(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("values without a `# --` description: %s", strings.Join(missing, ", "))
	}
	vals, _ := Values(raw)
	keys := map[string]bool{}
	for _, v := range vals {
		keys[v.Key] = true
	}
	for _, k := range SuppliedValues {
		if !keys[k] {
			t.Errorf("%s (a Secret or ConfigMap the user supplies) is not documented", k)
		}
	}
}

func TestValuesParsing(t *testing.T) {
	vals, err := Values([]byte("a:\n  # -- first\n  # continued\n  b: 1\n  c: x\n# -- a list\nd: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 2 || vals[0] != (Value{"a.b", "number", "1", "first continued"}) || vals[1].Key != "d" || vals[1].Type != "list" {
		t.Errorf("Values = %+v", vals)
	}
	missing, _ := Undocumented([]byte("a:\n  # -- first\n  b: 1\n  c: x\n"))
	if len(missing) != 1 || missing[0] != "a.c" {
		t.Errorf("Undocumented = %v", missing)
	}
}
