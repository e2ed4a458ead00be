package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func cgroupDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCgroupLimit(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		limit   int64
		ok, err bool
	}{
		{"v2 limit", map[string]string{"memory.max": "1073741824\n"}, 1 << 30, true, false},
		{"v2 unlimited", map[string]string{"memory.max": "max\n"}, 0, false, false},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, 512 << 20, true, false},
		{"v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false, false},
		{"none", map[string]string{}, 0, false, false},
		{"garbage", map[string]string{"memory.max": "lots"}, 0, false, true},
		{"zero", map[string]string{"memory.max": "0"}, 0, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit, ok, err := CgroupLimit(cgroupDir(t, c.files))
			if limit != c.limit || ok != c.ok || (err != nil) != c.err {
				t.Errorf("got %d %v %v, want %d %v err=%v", limit, ok, err, c.limit, c.ok, c.err)
			}
		})
	}
}

func TestApply(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")

	dir := cgroupDir(t, map[string]string{"memory.max": "1000000000"})
	res, err := Apply(dir, 0.9)
	if err != nil || res.Source != "cgroup" || res.Limit != 900000000 || res.Cgroup != 1000000000 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Errorf("runtime limit %d, want 900000000", got)
	}

	debug.SetMemoryLimit(math.MaxInt64)
	if res, err := Apply(dir, 0); err != nil || res.Source != "" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("ratio 0 set a limit: %+v %v", res, err)
	}
	if _, err := Apply(dir, 1.5); err == nil || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Error("a ratio above 1 was taken")
	}
	if res, err := Apply(cgroupDir(t, map[string]string{"memory.max": "max"}), 0.9); err != nil || res.Source != "" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("no cgroup limit set one: %+v %v", res, err)
	}

	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetMemoryLimit(300 << 20)
	if res, err := Apply(dir, 0.9); err != nil || res.Source != "GOMEMLIMIT" || res.Limit != 300<<20 {
		t.Errorf("GOMEMLIMIT was not left alone: %+v %v", res, err)
	}
}
