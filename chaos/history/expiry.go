package history

import (
	"fmt"
	"slices"
	"time"
)

// i7 checks no early expiry (I7): every expiry in the canonical log comes at least
// ttl·(1−ρ) of reference time after the latest moment the holder is known to have
// renewed (or proposed) the lease, and nothing renews or activates a lease after it
// expired.
func (a *analysis) i7() []Violation {
	if len(a.h.LeaseEvents) == 0 {
		return nil
	}
	g := newViolator(I7)
	l, r := a.leaseLog(), a.replayLog()
	expiredAt := make(map[txPlayer]uint64)
	ttl := make(map[txPlayer]time.Duration)
	unchecked := 0
	for i, ev := range l.events {
		for _, p := range r.affected[i] {
			k := txPlayer{ev.TxID, p}
			switch ev.Kind {
			case LeaseActivated, LeaseRenewed:
				if idx, ok := expiredAt[k]; ok {
					g.addf(ev.TxID, p, "", "", "index %d %s %s's lease on %s after it expired at index %d", ev.Index, ev.Kind, ev.TxID, p, idx)
				}
				fallthrough
			case LeaseGranted:
				if ev.TTL > 0 {
					ttl[k] = ev.TTL
				}
			case LeaseExpired:
				expiredAt[k] = ev.Index
				t := ttl[k]
				if t == 0 {
					t = a.proposedTTL(ev.TxID)
				}
				start, why, ok := a.leaseStart(ev.TxID, p, i, ev.At)
				if t == 0 || !ok {
					unchecked++
					continue
				}
				earliest := start + time.Duration(float64(t)*(1-a.h.Rho))
				if ev.At < earliest {
					g.addf(ev.TxID, p, "", "", "lease on %s expired at %v (index %d), %v early: %s at %v, ttl %v, ρ %g allow expiry from %v",
						p, ev.At, ev.Index, earliest-ev.At, why, start, t, a.h.Rho, earliest)
				}
			}
		}
	}
	if unchecked > 0 {
		a.note(fmt.Sprintf("I7: %d expiries not checked: no TTL, or no recorded propose or renew op bounds the lease's start", unchecked))
	}
	return g.violations()
}

// proposedTTL is the match TTL a propose op of tx asked for, or 0.
func (a *analysis) proposedTTL(tx string) time.Duration {
	for _, op := range a.proposeOps(tx) {
		if op.TTL > 0 {
			return op.TTL
		}
	}
	return 0
}

// proposeOps are the propose ops of tx: every attempt of its proposal id.
func (a *analysis) proposeOps(tx string) []*Op {
	if pid := a.proposalOf(tx); pid != "" {
		return a.proposes[pid]
	}
	var ops []*Op
	for _, op := range a.txOps[tx] {
		if op.Kind == OpPropose {
			ops = append(ops, op)
		}
	}
	return ops
}

// leaseStart is a lower bound on the reference time from which the holder of tx's
// lease on player was entitled to a full ttl when the lease expired at position pos
// (time at), with a description of where it comes from. Every bound is an op's Invoke,
// because the leader can only have counted from a moment after the call began:
//   - the proposal: the earliest attempt of the proposal id (a retry may return a
//     decision made before it was invoked);
//   - every renew that returned ok by at: it was applied after its Invoke;
//   - every renewal the log applied before the expiry: the earliest Invoke among the
//     renew calls that could have caused it (invoked by its At, not returned before
//     it, not failed). Unknown renews count only through such a renewal, because a
//     lost renew extends nothing.
func (a *analysis) leaseStart(tx, player string, pos int, at time.Duration) (time.Duration, string, bool) {
	var start time.Duration
	why, found := "", false
	raise := func(t time.Duration, w string) {
		if !found || t > start {
			start, why, found = t, w, true
		}
	}
	var first *Op
	for _, op := range a.proposeOps(tx) {
		if first == nil || op.Invoke < first.Invoke {
			first = op
		}
	}
	if first != nil {
		raise(first.Invoke, "proposal "+first.ProposalID+" invoked")
	}
	var renews []*Op
	for _, op := range a.txOps[tx] {
		if op.Kind != OpRenew {
			continue
		}
		renews = append(renews, op)
		if op.Result == ResultOK && op.Returned && op.Return <= at {
			raise(op.Invoke, "renew by "+op.Process+" (ok) invoked")
		}
	}
	l, r := a.leaseLog(), a.replayLog()
	for _, j := range a.txEvents(tx) {
		ev := l.events[j]
		if j >= pos {
			break
		}
		if ev.Kind != LeaseRenewed || !slices.Contains(r.affected[j], player) {
			continue
		}
		var cause *Op
		for _, op := range renews {
			maybe := !op.Returned || op.Result == ResultOK || op.Result == ResultUnknown
			if maybe && op.Invoke <= ev.At && (!op.Returned || op.Return >= ev.At) && (cause == nil || op.Invoke < cause.Invoke) {
				cause = op
			}
		}
		if cause != nil {
			raise(cause.Invoke, fmt.Sprintf("renewal at index %d, caused by a renew invoked", ev.Index))
		}
	}
	return start, why, found
}
