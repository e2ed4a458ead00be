package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// application is one node's application of one log entry: the lease events that entry
// produced, in recorded order; or a restore marker.
type application struct {
	index   uint64
	events  []LeaseEvent
	restore bool
}

// nodeLog is one node's lease events, split into applications in recorded order.
type nodeLog struct {
	node     string
	apps     []application           // recorded order, re-applications included
	first    map[uint64][]LeaseEvent // first application of each index
	last     uint64                  // highest applied index
	restored bool                    // recorded at least one restore marker past index 0
}

// leaseLog is the canonical replicated lease log merged from every node: at each index,
// the events of the reference node (the longest log that has that index), with At the
// earliest At among the nodes that agree.
type leaseLog struct {
	nodes      []*nodeLog // by node id
	events     []LeaseEvent
	indexes    []uint64 // distinct indexes of events, ascending
	complete   bool     // some node never restored a snapshot, so nothing was skipped
	violations []Violation
}

func (a *analysis) leaseLog() *leaseLog {
	if a.log == nil {
		a.log = buildLeaseLog(a.h.LeaseEvents)
	}
	return a.log
}

func buildLeaseLog(all []LeaseEvent) *leaseLog {
	l := &leaseLog{}
	count := make(map[string]int)
	for _, ev := range all {
		count[ev.Node]++
	}
	byNode := make(map[string][]LeaseEvent, len(count))
	for _, ev := range all {
		if byNode[ev.Node] == nil {
			byNode[ev.Node] = make([]LeaseEvent, 0, count[ev.Node])
		}
		byNode[ev.Node] = append(byNode[ev.Node], ev)
	}
	for _, id := range sortedKeys(byNode) {
		l.nodes = append(l.nodes, l.splitNode(id, byNode[id]))
	}
	// Merge, longest log first, so each index comes from the longest log holding it.
	order := slices.Clone(l.nodes)
	slices.SortStableFunc(order, func(x, y *nodeLog) int {
		return cmp.Or(cmp.Compare(y.last, x.last), cmp.Compare(len(y.first), len(x.first)))
	})
	canon := make(map[uint64][]LeaseEvent)
	source := make(map[uint64]string)
	for _, n := range order {
		for _, idx := range sortedKeys64(n.first) {
			evs := n.first[idx]
			ref, ok := canon[idx]
			if !ok {
				canon[idx] = slices.Clone(evs)
				source[idx] = n.node
				continue
			}
			if !sameEvents(ref, evs) {
				l.violate(n.node, fmt.Sprintf("index %d differs: node %s applied %s, node %s applied %s",
					idx, n.node, fmtEvents(evs), source[idx], fmtEvents(ref)))
				continue
			}
			for i := range ref {
				ref[i].At = min(ref[i].At, evs[i].At)
			}
		}
	}
	l.indexes = sortedKeys64(canon)
	for _, idx := range l.indexes {
		l.events = append(l.events, canon[idx]...)
	}
	for _, n := range l.nodes {
		l.checkGaps(n)
		l.complete = l.complete || !n.restored
	}
	return l
}

// splitNode groups a node's events into applications and checks re-applications.
//
// A process killed while it recorded one entry's events leaves a prefix of them (one
// write per event); restarted, it applies the entry again and records all of them.
// So an application that is the last before a restore marker (a snapshot restored,
// or a new incarnation of the process: collect.ReadDir marks those with index 0) may
// be torn: if a re-application extends it, the complete one stands. Any other
// difference, or a short first application anywhere else, is a violation.
func (l *leaseLog) splitNode(id string, evs []LeaseEvent) *nodeLog {
	n := &nodeLog{node: id, first: make(map[uint64][]LeaseEvent)}
	torn := make(map[uint64]bool) // indexes whose first application may be cut short
	for i := 0; i < len(evs); {
		ev := evs[i]
		if ev.Kind == LeaseRestored {
			if k := len(n.apps); k > 0 && !n.apps[k-1].restore {
				torn[n.apps[k-1].index] = true
			}
			n.apps = append(n.apps, application{index: ev.Index, restore: true})
			n.restored = n.restored || ev.Index > 0
			i++
			continue
		}
		j := i + 1
		for j < len(evs) && evs[j].Index == ev.Index && evs[j].Kind != LeaseRestored {
			j++
		}
		app := application{index: ev.Index, events: evs[i:j]}
		n.apps = append(n.apps, app)
		if prev, ok := n.first[ev.Index]; ok {
			switch {
			case sameEvents(prev, app.events):
			case torn[ev.Index] && len(prev) < len(app.events) && sameEvents(prev, app.events[:len(prev)]):
				n.first[ev.Index] = app.events // the recording was torn by a kill, not the apply
			default:
				l.violate(id, fmt.Sprintf("re-applied index %d differently: first %s, then %s",
					ev.Index, fmtEvents(prev), fmtEvents(app.events)))
			}
		} else {
			n.first[ev.Index] = app.events
			n.last = max(n.last, ev.Index)
		}
		i = j
	}
	return n
}

// checkGaps walks a node's applications in recorded order: indexes must increase, and
// a node may skip a canonical index only by restoring a snapshot that covers it.
func (l *leaseLog) checkGaps(n *nodeLog) {
	var at uint64 // the node's state is as of this index
	for _, app := range n.apps {
		if app.restore {
			at = app.index
			continue
		}
		if app.index <= at {
			l.violate(n.node, fmt.Sprintf("applied index %d after index %d without restoring a snapshot", app.index, at))
			continue
		}
		lo, _ := slices.BinarySearch(l.indexes, at+1)
		hi, _ := slices.BinarySearch(l.indexes, app.index)
		if hi > lo {
			l.violate(n.node, fmt.Sprintf("skipped %d log entries with lease events between index %d and %d (first missing: %d) without restoring a snapshot",
				hi-lo, at, app.index, l.indexes[lo]))
		}
		at = app.index
	}
}

func (l *leaseLog) violate(node, msg string) {
	l.violations = append(l.violations, Violation{Invariant: LOG, Node: node, Message: msg})
}

// sameEvents compares two entries' events by content (not node or time).
func sameEvents(x, y []LeaseEvent) bool {
	return slices.EqualFunc(x, y, func(a, b LeaseEvent) bool {
		return a.Kind == b.Kind && a.TxID == b.TxID && a.TTL == b.TTL && a.RenewSeq == b.RenewSeq &&
			samePlayers(a.Players, b.Players)
	})
}

func samePlayers(x, y []PlayerToken) bool {
	if slices.Equal(x, y) {
		return true
	}
	if len(x) != len(y) {
		return false
	}
	byPlayer := func(a, b PlayerToken) int { return cmp.Compare(a.Player, b.Player) }
	xs, ys := slices.Clone(x), slices.Clone(y)
	slices.SortFunc(xs, byPlayer)
	slices.SortFunc(ys, byPlayer)
	return slices.Equal(xs, ys)
}

func fmtEvents(evs []LeaseEvent) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		ps := make([]string, len(ev.Players))
		for j, p := range ev.Players {
			ps[j] = fmt.Sprintf("%s:%d", p.Player, p.Token)
		}
		parts[i] = fmt.Sprintf("%s %s {%s}", ev.Kind, ev.TxID, strings.Join(ps, " "))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func sortedKeys64[V any](m map[uint64]V) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
