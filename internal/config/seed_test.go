package config

import "testing"

// IDSeed is FNV-1a: the seeds of recorded chaos runs must not change, so it is
// pinned to the reference values and to the algorithm written out.
func TestIDSeed(t *testing.T) {
	fnv1a := func(s string) int64 {
		h := uint32(2166136261)
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
		return int64(h)
	}
	for id, want := range map[string]int64{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := IDSeed(id); got != want {
			t.Errorf("IDSeed(%q) = %#x, want %#x", id, got, want)
		}
	}
	seen := map[int64]string{}
	for _, id := range []string{"c1", "c2", "c3", "s1", "s2", "s3", "shard-eu-1"} {
		got := IDSeed(id)
		if got != fnv1a(id) {
			t.Errorf("IDSeed(%q) = %#x, want FNV-1a %#x", id, got, fnv1a(id))
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share seed %#x", id, other, got)
		}
		seen[got] = id
	}
}
