package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// evalCaches are the per-evaluation caches OPA's evaluator keeps: the values
// of the rules evaluated so far (topdown.VirtualCache) and of the data read
// from the store (topdown.BaseCache). OPA's own build a trie of hash maps,
// some tens of allocations per evaluation; an evaluation of a match policy
// caches about ten rules and one or two data documents, so flat slices
// searched linearly do the same with none, once a pooled evalCaches has grown
// to size.
//
// An evalCaches serves one evaluation at a time (it belongs to a pooled
// evalState): acquire it before the evaluation and release it after.
type evalCaches struct {
	virtual virtualCache
	base    baseCache
	terms   []*ast.Term // backing store of the cached refs
}

func (c *evalCaches) acquire() {
	c.virtual.owner, c.base.owner = c, c
	c.virtual.frames = append(c.virtual.frames[:0], 0)
}

// release empties c, so that it holds on to nothing of the evaluation.
func (c *evalCaches) release() {
	clear(c.virtual.entries)
	clear(c.base.entries)
	clear(c.terms)
	c.virtual.entries, c.virtual.frames = c.virtual.entries[:0], c.virtual.frames[:0]
	c.base.entries, c.terms = c.base.entries[:0], c.terms[:0]
}

// keep copies ref into c's backing store: the evaluator may reuse the slice
// it passed.
func (c *evalCaches) keep(ref ast.Ref) ast.Ref {
	c.terms = append(c.terms, ref...)
	n := len(c.terms)
	return ast.Ref(c.terms[n-len(ref) : n : n])
}

// refEqual compares from the last term, which tells refs apart soonest
// (they all start data.shardmatch).
func refEqual(a, b ast.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := len(a) - 1; i >= 0; i-- {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

type virtualEntry struct {
	ref   ast.Ref
	value *ast.Term // nil: the ref is undefined
}

// virtualCache implements topdown.VirtualCache: a stack of frames (OPA pushes
// one for each `with`), each a list of entries.
type virtualCache struct {
	owner   *evalCaches
	entries []virtualEntry
	frames  []int // index in entries where each frame starts
}

var _ topdown.VirtualCache = (*virtualCache)(nil)

func (c *virtualCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *virtualCache) Pop() {
	top := c.frames[len(c.frames)-1]
	clear(c.entries[top:])
	c.entries, c.frames = c.entries[:top], c.frames[:len(c.frames)-1]
}

func (c *virtualCache) find(ref ast.Ref) int {
	for i := c.frames[len(c.frames)-1]; i < len(c.entries); i++ {
		if refEqual(c.entries[i].ref, ref) {
			return i
		}
	}
	return -1
}

// Get returns (value, false) for a cached value, (nil, true) for a ref cached
// as undefined and (nil, false) for one not cached.
func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if i := c.find(ref); i >= 0 {
		return c.entries[i].value, c.entries[i].value == nil
	}
	return nil, false
}

// Put caches value for ref; a nil value records that ref is undefined.
func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	if i := c.find(ref); i >= 0 {
		c.entries[i].value = value
		return
	}
	c.entries = append(c.entries, virtualEntry{ref: c.owner.keep(ref), value: value})
}

// Keys lists the refs of the top frame that have a value.
func (c *virtualCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			keys = append(keys, e.ref)
		}
	}
	return keys
}

type baseEntry struct {
	ref   ast.Ref
	value ast.Value
}

// baseCache implements topdown.BaseCache as OPA's trie does: a value cached
// for a ref answers for the refs below it too, and caching a value drops what
// was cached below its ref.
type baseCache struct {
	owner   *evalCaches
	entries []baseEntry
}

var _ topdown.BaseCache = (*baseCache)(nil)

// Get returns the value at ref from the entry with the shortest ref that is
// a prefix of ref (the trie's walk from the root meets that one first), or nil.
func (c *baseCache) Get(ref ast.Ref) ast.Value {
	best := -1
	for i, e := range c.entries {
		if len(e.ref) <= len(ref) && (best < 0 || len(e.ref) < len(c.entries[best].ref)) && ref.HasPrefix(e.ref) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	e := c.entries[best]
	if len(e.ref) == len(ref) {
		return e.value
	}
	v, err := e.value.Find(ref[len(e.ref):])
	if err != nil {
		return nil
	}
	return v
}

// Put caches value at ref, replacing what was cached at ref or below it.
func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	kept := c.entries[:0]
	for _, e := range c.entries {
		if !e.ref.HasPrefix(ref) {
			kept = append(kept, e)
		}
	}
	clear(c.entries[len(kept):])
	c.entries = append(kept, baseEntry{ref: c.owner.keep(ref), value: value})
}
