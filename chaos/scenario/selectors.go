package scenario

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Dynamic selectors: the runner resolves them when a fault starts.
const (
	SelLeader                = "leader"
	SelFollower              = "follower"
	SelFollowers             = "followers"
	SelMinority              = "minority"
	SelMajorityWithoutLeader = "majority-without-leader"
	SelCoordinators          = "coordinators"
	SelShards                = "shards"
	SelAll                   = "all"
	SelNATS                  = "nats"
)

// DynamicSelectors lists the selectors that name a role or a class of nodes rather
// than one node.
var DynamicSelectors = []string{SelLeader, SelFollower, SelFollowers, SelMinority,
	SelMajorityWithoutLeader, SelCoordinators, SelShards, SelAll}

// maxCoordinators bounds the topology so that every leader/minority assignment can be
// enumerated when checking selectors (9 nodes: 4032 assignments).
const maxCoordinators = 9

// MinoritySize is how many coordinators "minority" names out of n: floor((n-1)/2),
// at least the leader.
func MinoritySize(n int) int { return max(1, (n-1)/2) }

// NodeNames lists the nodes of a topology: nats, c1..cN, s1..sM.
func (t Topology) NodeNames() []string {
	out := []string{SelNATS}
	for i := 1; i <= t.Coordinators; i++ {
		out = append(out, "c"+strconv.Itoa(i))
	}
	for i := 1; i <= t.Shards; i++ {
		out = append(out, "s"+strconv.Itoa(i))
	}
	return out
}

// CheckSelector reports whether sel names a node of the topology or a dynamic class.
func (t Topology) CheckSelector(sel string) error {
	if slices.Contains(DynamicSelectors, sel) || sel == SelNATS {
		return nil
	}
	for _, p := range []struct {
		prefix string
		n      int
		what   string
	}{{"c", t.Coordinators, "coordinators"}, {"s", t.Shards, "shards"}} {
		rest, ok := strings.CutPrefix(sel, p.prefix)
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest)
		if err != nil || strconv.Itoa(i) != rest {
			break
		}
		if i < 1 || i > p.n {
			return fmt.Errorf("%q: the topology has %d %s (%s1..%s%d)", sel, p.n, p.what, p.prefix, p.prefix, p.n)
		}
		return nil
	}
	return fmt.Errorf("%q is not a node (nats, c1.., s1..) nor one of %s", sel, strings.Join(DynamicSelectors, ", "))
}

// World is one possible assignment of the coordinators' roles when a fault starts:
// which coordinator leads, which follower "follower" picks, and which followers join
// the leader in "minority". Selectors resolve to concrete nodes only in a World.
type World struct {
	Leader   int   // 1-based coordinator index
	Follower int   // 1-based; 0 if there is no follower
	Minority []int // 1-based, includes Leader
}

// String describes the world, e.g. "leader c1, follower c2, minority {c1}".
func (w World) String() string {
	ms := make([]string, len(w.Minority))
	for i, m := range w.Minority {
		ms[i] = "c" + strconv.Itoa(m)
	}
	f := "none"
	if w.Follower > 0 {
		f = "c" + strconv.Itoa(w.Follower)
	}
	return fmt.Sprintf("leader c%d, follower %s, minority {%s}", w.Leader, f, strings.Join(ms, ","))
}

// Worlds enumerates every role assignment of the topology's coordinators.
func (t Topology) Worlds() []World {
	n := t.Coordinators
	if n < 1 || n > maxCoordinators {
		return nil
	}
	m := MinoritySize(n)
	var out []World
	for l := 1; l <= n; l++ {
		var others []int
		for c := 1; c <= n; c++ {
			if c != l {
				others = append(others, c)
			}
		}
		followers := others
		if len(followers) == 0 {
			followers = []int{0}
		}
		for _, sub := range subsets(others, m-1) {
			minority := append([]int{l}, sub...)
			slices.Sort(minority)
			for _, f := range followers {
				out = append(out, World{Leader: l, Follower: f, Minority: minority})
			}
		}
	}
	return out
}

// subsets returns every k-element subset of xs, in order.
func subsets(xs []int, k int) [][]int {
	if k <= 0 {
		return [][]int{nil}
	}
	if len(xs) < k {
		return nil
	}
	var out [][]int
	for i := range xs {
		for _, rest := range subsets(xs[i+1:], k-1) {
			out = append(out, append([]int{xs[i]}, rest...))
		}
	}
	return out
}

// Resolve returns the nodes sels name in world w, sorted, without duplicates. Unknown
// selectors resolve to nothing (CheckSelector reports them).
func (t Topology) Resolve(sels []string, w World) []string {
	set := map[string]bool{}
	coord := func(i int) {
		if i > 0 {
			set["c"+strconv.Itoa(i)] = true
		}
	}
	for _, sel := range sels {
		switch sel {
		case SelLeader:
			coord(w.Leader)
		case SelFollower:
			coord(w.Follower)
		case SelFollowers:
			for c := 1; c <= t.Coordinators; c++ {
				if c != w.Leader {
					coord(c)
				}
			}
		case SelMinority:
			for _, c := range w.Minority {
				coord(c)
			}
		case SelMajorityWithoutLeader:
			for c := 1; c <= t.Coordinators; c++ {
				if !slices.Contains(w.Minority, c) {
					coord(c)
				}
			}
		case SelCoordinators:
			for c := 1; c <= t.Coordinators; c++ {
				coord(c)
			}
		case SelShards:
			for s := 1; s <= t.Shards; s++ {
				set["s"+strconv.Itoa(s)] = true
			}
		case SelAll:
			for _, n := range t.NodeNames() {
				set[n] = true
			}
		default:
			if t.CheckSelector(sel) == nil {
				set[sel] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.SortFunc(out, compareNodes)
	return out
}

// compareNodes orders nats, then coordinators, then shards, each by number.
func compareNodes(a, b string) int {
	rank := func(s string) (int, int) {
		if s == SelNATS {
			return 0, 0
		}
		i, _ := strconv.Atoi(s[1:])
		if s[0] == 'c' {
			return 1, i
		}
		return 2, i
	}
	ra, ia := rank(a)
	rb, ib := rank(b)
	if ra != rb {
		return ra - rb
	}
	return ia - ib
}

// intersect returns the nodes in both sorted lists.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
