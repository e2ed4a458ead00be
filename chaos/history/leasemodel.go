package history

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// holder is the live lease on one player in the independent lease model.
type holder struct {
	tx    string
	token uint64
	since uint64 // index of the grant
	state string // RESERVED or ACTIVE
}

// leaseModel is an independent model of the lease table: a holder per player. It is
// fed lease events in log order and says when an event contradicts it.
type leaseModel struct {
	holders map[string]holder
	byTx    map[string]map[string]struct{} // txid -> players it holds
}

func newLeaseModel() *leaseModel {
	return &leaseModel{holders: make(map[string]holder), byTx: make(map[string]map[string]struct{})}
}

func (m *leaseModel) clone() *leaseModel {
	c := &leaseModel{holders: maps.Clone(m.holders), byTx: make(map[string]map[string]struct{}, len(m.byTx))}
	for tx, ps := range m.byTx {
		c.byTx[tx] = maps.Clone(ps)
	}
	return c
}

func (m *leaseModel) set(p string, h holder) {
	m.holders[p] = h
	if m.byTx[h.tx] == nil {
		m.byTx[h.tx] = make(map[string]struct{})
	}
	m.byTx[h.tx][p] = struct{}{}
}

func (m *leaseModel) drop(p string) {
	h, ok := m.holders[p]
	if !ok {
		return
	}
	delete(m.holders, p)
	delete(m.byTx[h.tx], p)
	if len(m.byTx[h.tx]) == 0 {
		delete(m.byTx, h.tx)
	}
}

// players resolves the players an event affects: its list, or every player its txn
// holds when the list is empty.
func (m *leaseModel) players(ev LeaseEvent) []string {
	if len(ev.Players) > 0 {
		ps := make([]string, len(ev.Players))
		for i, p := range ev.Players {
			ps[i] = p.Player
		}
		return ps
	}
	return sortedKeys(m.byTx[ev.TxID])
}

// apply feeds one event to the model. problem is called for every contradiction with
// the player concerned ("" for the whole event) and a message. It returns the players
// the event affected.
func (m *leaseModel) apply(ev LeaseEvent, problem func(player, msg string)) []string {
	ps := m.players(ev)
	switch ev.Kind {
	case LeaseGranted:
		for _, pt := range ev.Players {
			if h, ok := m.holders[pt.Player]; ok {
				problem(pt.Player, fmt.Sprintf("index %d granted %s to %s while %s holds it (granted at index %d)",
					ev.Index, pt.Player, ev.TxID, h.tx, h.since))
				m.drop(pt.Player)
			}
			m.set(pt.Player, holder{tx: ev.TxID, token: pt.Token, since: ev.Index, state: StateReserved})
		}
	case LeaseActivated, LeaseRenewed, LeaseReleased, LeaseExpired, LeaseFreed:
		if len(ps) == 0 {
			problem("", fmt.Sprintf("index %d: %s %s, which holds no leases", ev.Index, ev.Kind, ev.TxID))
		}
		for _, p := range ps {
			h, ok := m.holders[p]
			switch {
			case !ok:
				problem(p, fmt.Sprintf("index %d: %s %s of %s, which has no lease", ev.Index, ev.Kind, ev.TxID, p))
				continue
			case h.tx != ev.TxID:
				problem(p, fmt.Sprintf("index %d: %s %s of %s, which %s holds (granted at index %d)",
					ev.Index, ev.Kind, ev.TxID, p, h.tx, h.since))
				continue
			}
			switch ev.Kind {
			case LeaseActivated:
				h.state = StateActive
				m.holders[p] = h
			case LeaseReleased, LeaseExpired, LeaseFreed:
				m.drop(p)
			}
		}
	}
	return ps
}

// txPlayer keys per-lease facts.
type txPlayer struct{ tx, player string }

// interval is a lease's lifetime in log indexes: [start, end); end is MaxUint64 while live.
type interval struct{ start, end uint64 }

// replay is the canonical lease log fed through the model once.
type replay struct {
	affected  [][]string             // per canonical event: the players it affected
	intervals map[txPlayer]interval  // every granted lease
	snapshots map[uint64]*leaseModel // model as of an index (restore markers, applied indexes)
}

func (a *analysis) replayLog() *replay {
	if a.replay != nil {
		return a.replay
	}
	l := a.leaseLog()
	want := make(map[uint64]struct{})
	for _, n := range l.nodes {
		for _, app := range n.apps {
			if app.restore {
				want[app.index] = struct{}{}
			}
		}
	}
	for _, nf := range a.h.Final.Nodes {
		if nf.AppliedIndex > 0 {
			want[nf.AppliedIndex] = struct{}{}
		}
	}
	snapAt := sortedKeys64(want)
	r := &replay{
		affected:  make([][]string, len(l.events)),
		intervals: make(map[txPlayer]interval),
		snapshots: make(map[uint64]*leaseModel, len(snapAt)),
	}
	m := newLeaseModel()
	for i, ev := range l.events {
		for len(snapAt) > 0 && snapAt[0] < ev.Index {
			r.snapshots[snapAt[0]] = m.clone()
			snapAt = snapAt[1:]
		}
		r.affected[i] = m.apply(ev, func(string, string) {}) // contradictions: see CheckI2
		for _, p := range r.affected[i] {
			k := txPlayer{ev.TxID, p}
			switch ev.Kind {
			case LeaseGranted:
				r.intervals[k] = interval{start: ev.Index, end: math.MaxUint64}
			case LeaseReleased, LeaseExpired, LeaseFreed:
				if iv, ok := r.intervals[k]; ok && iv.end == math.MaxUint64 {
					iv.end = ev.Index
					r.intervals[k] = iv
				}
			}
		}
	}
	for _, idx := range snapAt {
		r.snapshots[idx] = m.clone()
	}
	a.replay = r
	return r
}

// grantToken is the token the canonical log granted tx for player, and whether it did.
func (a *analysis) grantToken(tx, player string) (uint64, bool) {
	l := a.leaseLog()
	for _, i := range a.txEvents(tx) {
		ev := l.events[i]
		if ev.Kind != LeaseGranted {
			continue
		}
		for _, pt := range ev.Players {
			if pt.Player == player {
				return pt.Token, true
			}
		}
	}
	return 0, false
}

// txEvents lists the canonical event positions of each txid, built on first use.
func (a *analysis) txEvents(tx string) []int {
	if a.txPos == nil {
		a.txPos = make(map[string][]int)
		for i, ev := range a.leaseLog().events {
			a.txPos[ev.TxID] = append(a.txPos[ev.TxID], i)
		}
	}
	return a.txPos[tx]
}

// hasLeaseKind reports whether the canonical log has an event of kind for tx.
func (a *analysis) hasLeaseKind(tx string, kind LeaseEventKind) bool {
	evs := a.leaseLog().events
	return slices.ContainsFunc(a.txEvents(tx), func(i int) bool { return evs[i].Kind == kind })
}
