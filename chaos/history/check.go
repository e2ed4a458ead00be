package history

import (
	"fmt"
	"slices"
	"strings"
)

// Check runs every checker over h and returns the violations, in a deterministic
// order, with counts of what the history holds and notes on checks it had to skip.
// It does not modify h.
func Check(h *History) Report {
	a := newAnalysis(h)
	var vs []Violation
	for _, check := range []func() []Violation{a.logCheck, a.i1, a.i2, a.i3, a.i4, a.i5, a.i6, a.i7} {
		vs = append(vs, check()...)
	}
	sortViolations(vs)
	if vs == nil {
		vs = []Violation{}
	}
	st := a.stats()
	st["violations"] = len(vs)
	return Report{Violations: vs, Stats: st, Notes: sortedKeys(a.notes)}
}

// CheckLog checks that every node applied the same lease log (LOG).
func CheckLog(h *History) []Violation { return sorted(newAnalysis(h).logCheck()) }

// CheckI1 checks atomicity: every txn is committed at all its shards or at none.
func CheckI1(h *History) []Violation { return sorted(newAnalysis(h).i1()) }

// CheckI2 checks no double booking against an independent replay of the lease log.
func CheckI2(h *History) []Violation { return sorted(newAnalysis(h).i2()) }

// CheckI3 checks that decisions given to proposers are durable and unique.
func CheckI3(h *History) []Violation { return sorted(newAnalysis(h).i3()) }

// CheckI4 checks fencing tokens: strictly increasing per player, never lowered at a shard.
func CheckI4(h *History) []Violation { return sorted(newAnalysis(h).i4()) }

// CheckI5 checks termination after settle (nothing without a Settled history).
func CheckI5(h *History) []Violation { return sorted(newAnalysis(h).i5()) }

// CheckI6 checks that no shard applied an effect twice.
func CheckI6(h *History) []Violation { return sorted(newAnalysis(h).i6()) }

// CheckI7 checks that no lease expired before ttl·(1−ρ) after its last renew.
func CheckI7(h *History) []Violation { return sorted(newAnalysis(h).i7()) }

func sorted(vs []Violation) []Violation {
	sortViolations(vs)
	return vs
}

func (a *analysis) logCheck() []Violation {
	if len(a.h.LeaseEvents) == 0 {
		a.note("LOG, I2 (lease log), I4 (grants), I7 skipped: no lease events recorded")
		return nil
	}
	return slices.Clone(a.leaseLog().violations)
}

func (a *analysis) stats() map[string]int {
	st := map[string]int{
		"ops":          len(a.h.Ops),
		"shard_events": len(a.h.ShardEvents),
		"lease_events": len(a.h.LeaseEvents),
		"nodes":        len(a.nodes),
		"shards":       len(a.shards),
		"txns":         len(a.allTxIDs()),
	}
	for _, op := range a.h.Ops {
		st[string(op.Kind)]++
		switch {
		case !op.Returned:
			st["not_returned"]++
		case op.Result != "":
			st[string(op.Result)]++
		}
	}
	if len(a.h.LeaseEvents) > 0 {
		l := a.leaseLog()
		st["log_entries"] = len(l.indexes)
		for _, ev := range l.events {
			st[string(ev.Kind)]++
		}
	}
	return st
}

// violator builds violations of one invariant, merging identical findings from several
// nodes into one violation that names them.
type violator struct {
	inv   string
	order []vkey
	nodes map[vkey][]string
}

type vkey struct{ tx, player, shard, msg string }

func newViolator(inv string) *violator {
	return &violator{inv: inv, nodes: make(map[vkey][]string)}
}

// add records a finding; node may be "".
func (g *violator) add(tx, player, shard, node, msg string) {
	k := vkey{tx, player, shard, msg}
	ns, seen := g.nodes[k]
	if !seen {
		g.order = append(g.order, k)
	}
	if node != "" && !slices.Contains(ns, node) {
		ns = append(ns, node)
	}
	g.nodes[k] = ns
}

// addf is add with a formatted message.
func (g *violator) addf(tx, player, shard, node, format string, args ...any) {
	g.add(tx, player, shard, node, fmt.Sprintf(format, args...))
}

func (g *violator) violations() []Violation {
	var out []Violation
	for _, k := range g.order {
		v := Violation{Invariant: g.inv, TxID: k.tx, Player: k.player, Shard: k.shard, Message: k.msg}
		switch ns := g.nodes[k]; len(ns) {
		case 0:
		case 1:
			v.Node = ns[0]
		default:
			slices.Sort(ns)
			v.Message += " (nodes " + strings.Join(ns, ", ") + ")"
		}
		out = append(out, v)
	}
	return out
}
