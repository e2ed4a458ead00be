package policy_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/shardmatch/shardmatch/policy"
)

// copyDefaultBundle writes the embedded default bundle into a new temp dir.
func copyDefaultBundle(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policy.DefaultBundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policy.DefaultBundle(), p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeAtomic replaces dir/name as an editor or a deploy tool should: write a
// temp file, then rename it over the old one.
func writeAtomic(t testing.TB, dir, name string, content []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// defaultDataBytes returns the default bundle's data.json as it is.
func defaultDataBytes(t testing.TB) []byte {
	t.Helper()
	b, err := fs.ReadFile(policy.DefaultBundle(), "data.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// defaultData returns the default bundle's data.json, parsed.
func defaultData(t testing.TB) map[string]any {
	t.Helper()
	b, err := fs.ReadFile(policy.DefaultBundle(), "data.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// dataWithSpread returns data.json with 5v5's max_mmr_spread set to spread.
func dataWithSpread(t testing.TB, spread int) []byte {
	t.Helper()
	d := defaultData(t)
	d["shardmatch"].(map[string]any)["modes"].(map[string]any)["5v5"].(map[string]any)["max_mmr_spread"] = spread
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writePolicy writes a bundle of one policy file (plus optional data.json)
// into a new temp dir.
func writePolicy(t testing.TB, rego string, data string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	if data != "" {
		if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
