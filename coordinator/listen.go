package coordinator

import (
	"slices"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Listener hears what a node's front end (its NATS API server) must: leadership taken
// over and lost, and every decision this node applies. Calls are made one at a time,
// in order; Decided is called with the FSM's lock held, so it must not block or call
// back into the node.
type Listener interface {
	Leading(leading bool, term uint64)
	Decided(d *smv1.Decision)
}

// Listen adds l. If the node leads (has taken over) when l is added, l hears
// Leading(true, term) at once, so a listener made after the node misses nothing that
// matters: the node can be built first and its front end after it. The returned
// function removes l.
func (n *Node) Listen(l Listener) (remove func()) {
	n.lisMu.Lock()
	defer n.lisMu.Unlock()
	n.setListeners(append(n.currentListeners(), l))
	if n.leadingTerm != 0 {
		l.Leading(true, n.leadingTerm)
	}
	return func() {
		n.lisMu.Lock()
		defer n.lisMu.Unlock()
		n.setListeners(slices.DeleteFunc(n.currentListeners(), func(x Listener) bool { return x == l }))
	}
}

// currentListeners returns a copy of the listeners.
func (n *Node) currentListeners() []Listener {
	if p := n.listeners.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

func (n *Node) setListeners(ls []Listener) { n.listeners.Store(&ls) }

func (n *Node) eachListener(f func(Listener)) {
	if p := n.listeners.Load(); p != nil {
		for _, l := range *p {
			f(l)
		}
	}
}

// announceLeading tells Config.OnLeadership and every listener that this node has
// taken over (leading) or stopped leading term.
func (n *Node) announceLeading(leading bool, term uint64) {
	n.lisMu.Lock()
	defer n.lisMu.Unlock()
	if leading {
		n.leadingTerm = term
	} else {
		n.leadingTerm = 0
	}
	if n.cfg.OnLeadership != nil {
		n.cfg.OnLeadership(leading, term)
	}
	n.eachListener(func(l Listener) { l.Leading(leading, term) })
}

// announceDecided tells Config.OnDecided and every listener of a decision applied.
func (n *Node) announceDecided(d *smv1.Decision) {
	if n.cfg.OnDecided != nil {
		n.cfg.OnDecided(d)
	}
	n.eachListener(func(l Listener) { l.Decided(d) })
}
