package ptrindex

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

type entry struct {
	keys []string // the keys the entry is indexed under
	id   int
}

func matchEntry(e *entry, key string) bool { return slices.Contains(e.keys, key) }

// checkAgainst demands x hold exactly want.
func checkAgainst(t testing.TB, x *Index[entry], want map[string]*entry) {
	t.Helper()
	if x.Len() != len(want) {
		t.Fatalf("Len %d, want %d", x.Len(), len(want))
	}
	for k, v := range want {
		if got := x.Get(k); got != v {
			t.Fatalf("Get(%q) = %v, want %v", k, got, v)
		}
	}
	n := 0
	for v := range x.All() {
		n++
		found := false
		for _, k := range v.keys {
			found = found || want[k] == v
		}
		if !found {
			t.Fatalf("All yields %v, not in the index", v)
		}
	}
	if n != len(want) {
		t.Fatalf("All yields %d entries, want %d", n, len(want))
	}
}

// run applies the operations ops encodes to an index and a map, and compares them
// after each: byte pairs (op, key).
func run(t testing.TB, ops []byte, keys int) {
	x := New(matchEntry, int(len(ops)%5))
	want := map[string]*entry{}
	for i := 0; i+1 < len(ops); i += 2 {
		k := fmt.Sprint("k", int(ops[i+1])%keys)
		cur := want[k]
		switch ops[i] % 6 {
		case 0, 1:
			e := &entry{keys: []string{k}, id: i}
			if old := x.Put(k, e); old != cur {
				t.Fatalf("Put(%q) replaced %v, want %v", k, old, cur)
			}
			want[k] = e
		case 2:
			if old := x.Delete(k); old != cur {
				t.Fatalf("Delete(%q) = %v, want %v", k, old, cur)
			}
			delete(want, k)
		case 3: // Insert of an absent key, Swap of a present one
			e := &entry{keys: []string{k}, id: i}
			if cur == nil {
				x.Insert(k, e)
			} else if !x.Swap(k, cur, e) {
				t.Fatalf("Swap(%q) did not find %v", k, cur)
			}
			want[k] = e
		case 4:
			if got := x.Remove(k, &entry{keys: []string{k}}); got {
				t.Fatalf("Remove(%q) of an entry not in the index", k)
			}
			if cur != nil && !x.Remove(k, cur) {
				t.Fatalf("Remove(%q) did not find %v", k, cur)
			}
			delete(want, k)
		case 5:
			if got := x.Get(k); got != cur {
				t.Fatalf("Get(%q) = %v, want %v", k, got, cur)
			}
		}
		checkAgainst(t, x, want)
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		x.Delete(k)
	}
	if x.Len() != 0 || x.Get("k0") != nil {
		t.Fatal("not empty after deleting everything")
	}
}

func TestIndexAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, keys := range []int{3, 20, 200, 3000} {
		ops := make([]byte, 6000)
		for i := range ops {
			ops[i] = byte(r.IntN(256))
		}
		run(t, ops, keys)
	}
}

// TestIndexManyKeys grows through several resizes, deletes half, and checks every key
// of entries indexed under several keys (as the lease table's player index is).
func TestIndexManyKeys(t *testing.T) {
	x := New(matchEntry, 0)
	want := map[string]*entry{}
	for i := range 20000 {
		e := &entry{keys: []string{fmt.Sprint("a", i), fmt.Sprint("b", i)}, id: i}
		for _, k := range e.keys {
			if old := x.Put(k, e); old != nil {
				t.Fatalf("Put of new key %q replaced %v", k, old)
			}
			want[k] = e
		}
	}
	checkAgainst(t, x, want)
	for i := 0; i < 20000; i += 2 {
		for _, k := range []string{fmt.Sprint("a", i), fmt.Sprint("b", i)} {
			if x.Delete(k) == nil {
				t.Fatalf("Delete(%q) found nothing", k)
			}
			delete(want, k)
		}
	}
	checkAgainst(t, x, want)
	// Replace the odd ones with copies under the same keys, as copy on write does.
	for i := 1; i < 20000; i += 2 {
		old := want[fmt.Sprint("a", i)]
		c := *old
		for _, k := range c.keys {
			if x.Put(k, &c) != old {
				t.Fatalf("Put(%q) replaced the wrong entry", k)
			}
			want[k] = &c
		}
	}
	checkAgainst(t, x, want)
}

func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 2, 1, 0, 1}, uint8(3))
	f.Fuzz(func(t *testing.T, ops []byte, keys uint8) { run(t, ops, int(keys)%64+1) })
}

func BenchmarkIndexGet(b *testing.B) {
	x := New(matchEntry, 0)
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = fmt.Sprint("p", i)
		x.Put(keys[i], &entry{keys: keys[i : i+1]})
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if x.Get(keys[i&(1<<20-1)]) == nil {
			b.Fatal("missing")
		}
	}
}

// collidingPair returns two distinct keys of one tag under x's seed (a birthday search:
// ~80k keys).
func collidingPair(x *Index[entry], prefix string) (string, string) {
	seen := map[uint32]string{}
	for i := 0; ; i++ {
		k := fmt.Sprint(prefix, i)
		h := x.hash(k)
		if o, ok := seen[h]; ok {
			return o, k
		}
		seen[h] = k
	}
}

// TestIndexMultiKeyCollisions: an entry indexed under two keys of one tag (whose slots
// both match either key) is inserted, looked up, swapped and removed correctly: what
// the lease table's player index relies on.
func TestIndexMultiKeyCollisions(t *testing.T) {
	x := New(matchEntry, 0)
	a1, a2 := collidingPair(x, "a")
	b1, b2 := collidingPair(x, "b")
	a := &entry{keys: []string{a1, a2}}
	b := &entry{keys: []string{b1, "other", b2}}
	for _, e := range []*entry{a, b} {
		for _, k := range e.keys {
			x.Insert(k, e)
		}
	}
	if x.Len() != 5 || x.Get(a2) != a || x.Get(b1) != b || x.Get("c") != nil {
		t.Fatal("lookups with colliding tags")
	}
	c := *a
	for _, k := range a.keys {
		if !x.Swap(k, a, &c) {
			t.Fatalf("Swap(%q) did not find a", k)
		}
	}
	for v := range x.All() {
		if v == a {
			t.Fatal("a still indexed after swapping every key")
		}
	}
	for _, k := range c.keys {
		if !x.Remove(k, &c) {
			t.Fatalf("Remove(%q) did not find c", k)
		}
	}
	if x.Len() != 3 || x.Get(a1) != nil || x.Get(a2) != nil || x.Get(b2) != b {
		t.Fatalf("after removing c: %d entries", x.Len())
	}
	for _, k := range b.keys {
		if !x.Remove(k, b) {
			t.Fatalf("Remove(%q) did not find b", k)
		}
	}
	if x.Len() != 0 {
		t.Fatalf("%d entries left", x.Len())
	}
}
