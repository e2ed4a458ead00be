// Package ptrindex is a hash index of pointers by string key, for the coordinator's
// largest tables (a million leases): it costs 12 bytes a slot, 16–32 bytes an entry,
// where a Go map[string]*T costs 29–57 (a 16-byte key and an 8-byte value a slot, 7/16
// to 7/8 full). The key is not stored: a caller-given match function compares an
// entry with a key, so a key can be a field of the entry, or one of several (an entry
// indexed under each of its players). Open addressing, linear probing, a 32-bit hash
// tag a slot (so probing rarely dereferences an entry, and growing never rehashes a
// key), deletion by backward shift (no tombstones).
//
// An entry indexed under one key uses Get, Put and Delete. An entry indexed under
// several keys matches each of them, so two of its slots whose tags collide both match
// either key: it uses Get, Insert (of keys known absent), Swap and Remove, which tell
// slots apart by the entry they hold.
//
// Iteration order is the hash order under a random seed: callers that need an order
// sort. An Index is not safe for concurrent use.
package ptrindex

import (
	"hash/maphash"
	"iter"
	"math/bits"
)

// Index maps string keys to pointers. The zero value is not usable: call New.
type Index[T any] struct {
	match func(v *T, key string) bool
	seed  maphash.Seed
	tags  []uint32 // the low 32 bits of the key's hash; the slot's home is tag&mask
	vals  []*T     // nil: an empty slot
	n     int
}

// New returns an empty index whose entries match keys by match, sized for hint
// entries.
func New[T any](match func(v *T, key string) bool, hint int) *Index[T] {
	x := &Index[T]{match: match, seed: maphash.MakeSeed()}
	x.resize(capFor(hint))
	return x
}

// capFor is the power-of-two slot count that holds n entries at most 3/4 full.
func capFor(n int) int {
	c := max(8, n+n/3+1)
	return 1 << bits.Len(uint(c-1))
}

func (x *Index[T]) hash(key string) uint32 { return uint32(maphash.String(x.seed, key)) }

// Len is the number of entries.
func (x *Index[T]) Len() int { return x.n }

// Get returns the entry matching key, or nil.
func (x *Index[T]) Get(key string) *T {
	tag := x.hash(key)
	mask := uint32(len(x.vals) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		v := x.vals[i]
		if v == nil {
			return nil
		}
		if x.tags[i] == tag && x.match(v, key) {
			return v
		}
	}
}

// Put makes v the entry of key (v must match key) and returns the entry it replaced,
// or nil. For entries indexed under one key only.
func (x *Index[T]) Put(key string, v *T) *T {
	if v == nil {
		panic("ptrindex: Put of nil")
	}
	x.reserve()
	tag := x.hash(key)
	mask := uint32(len(x.vals) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		old := x.vals[i]
		if old == nil {
			x.tags[i], x.vals[i] = tag, v
			x.n++
			return nil
		}
		if x.tags[i] == tag && x.match(old, key) {
			x.vals[i] = v
			return old
		}
	}
}

// Insert adds v under key, which the caller knows no entry holds.
func (x *Index[T]) Insert(key string, v *T) {
	if v == nil {
		panic("ptrindex: Insert of nil")
	}
	x.reserve()
	tag := x.hash(key)
	mask := uint32(len(x.vals) - 1)
	i := tag & mask
	for x.vals[i] != nil {
		i = (i + 1) & mask
	}
	x.tags[i], x.vals[i] = tag, v
	x.n++
}

// reserve grows the index if one more entry would fill it beyond 3/4.
func (x *Index[T]) reserve() {
	if (x.n+1)*4 > len(x.vals)*3 {
		x.resize(len(x.vals) * 2)
	}
}

// slotOf returns the slot of key holding v (v nil: holding an entry matching key), or
// -1.
func (x *Index[T]) slotOf(key string, v *T) int {
	tag := x.hash(key)
	mask := uint32(len(x.vals) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		cur := x.vals[i]
		if cur == nil {
			return -1
		}
		if x.tags[i] == tag && (v == nil && x.match(cur, key) || v != nil && cur == v) {
			return int(i)
		}
	}
}

// Swap replaces old, held under key, by v, and reports whether it found old there.
func (x *Index[T]) Swap(key string, old, v *T) bool {
	if old == nil || v == nil {
		panic("ptrindex: Swap of nil")
	}
	i := x.slotOf(key, old)
	if i < 0 {
		return false
	}
	x.vals[i] = v
	return true
}

// Delete removes the entry of key and returns it, or nil if there was none. For
// entries indexed under one key only.
func (x *Index[T]) Delete(key string) *T {
	i := x.slotOf(key, nil)
	if i < 0 {
		return nil
	}
	old := x.vals[i]
	x.clear(uint32(i))
	return old
}

// Remove removes v from under key and reports whether it was there.
func (x *Index[T]) Remove(key string, v *T) bool {
	if v == nil {
		panic("ptrindex: Remove of nil")
	}
	i := x.slotOf(key, v)
	if i < 0 {
		return false
	}
	x.clear(uint32(i))
	return true
}

// clear empties slot i, shifting back each later entry of the probe run that may live
// there (its home is not cyclically within (i, its slot]).
func (x *Index[T]) clear(i uint32) {
	mask := uint32(len(x.vals) - 1)
	for j := (i + 1) & mask; x.vals[j] != nil; j = (j + 1) & mask {
		home := x.tags[j] & mask
		if (j-home)&mask >= (j-i)&mask {
			x.tags[i], x.vals[i] = x.tags[j], x.vals[j]
			i = j
		}
	}
	x.tags[i], x.vals[i] = 0, nil
	x.n--
}

// All yields every entry (an entry stored under several keys, once per key).
func (x *Index[T]) All() iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for _, v := range x.vals {
			if v != nil && !yield(v) {
				return
			}
		}
	}
}

func (x *Index[T]) resize(slots int) {
	tags, vals := x.tags, x.vals
	x.tags, x.vals = make([]uint32, slots), make([]*T, slots)
	mask := uint32(slots - 1)
	for k, v := range vals {
		if v == nil {
			continue
		}
		i := tags[k] & mask
		for x.vals[i] != nil {
			i = (i + 1) & mask
		}
		x.tags[i], x.vals[i] = tags[k], v
	}
}
