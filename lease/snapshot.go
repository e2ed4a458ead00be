package lease

import (
	"fmt"
	"slices"
	"strings"
)

// Snapshot returns every lease sorted by player. Together with MaxToken it is the whole
// table: RestoreTable(t.Snapshot(), t.MaxToken()) rebuilds an equal table, which is how
// the FSM persists the table in a Raft snapshot.
func (t *Table) Snapshot() []Lease {
	out := make([]Lease, 0, len(t.byPlayer))
	for p, e := range t.byPlayer {
		out = append(out, e.lease(p))
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.Player, b.Player) })
	return out
}

// RestoreTable rebuilds a table from a Snapshot and the MaxToken saved with it. The
// leases may come in any order. It accepts exactly the tables that Grant, Activate,
// Renew, Release and Expire can reach, and returns ErrInvalid for anything else, so a
// corrupt or hand-edited snapshot is refused rather than loaded into a replica:
// an empty player or txid, an unknown state, a non-positive TTL, a zero token or one
// above maxToken, a RESERVED lease with a non-zero RenewSeq, a player leased twice,
// leases of one txid that disagree on token, state, TTL or RenewSeq, or two txids
// sharing a token (tokens strictly increase from grant to grant).
func RestoreTable(leases []Lease, maxToken uint64) (*Table, error) {
	t := NewTable()
	t.maxToken = maxToken
	tokenOwner := make(map[uint64]string)
	for _, l := range leases {
		if err := validSnapshotLease(l, maxToken); err != nil {
			return nil, err
		}
		if _, dup := t.byPlayer[l.Player]; dup {
			return nil, fmt.Errorf("%w: restore: player %q leased twice", ErrInvalid, l.Player)
		}
		e, ok := t.byTxn[l.TxID]
		if !ok {
			if owner, used := tokenOwner[l.Token]; used {
				return nil, fmt.Errorf("%w: restore: txids %q and %q share token %d", ErrInvalid, owner, l.TxID, l.Token)
			}
			tokenOwner[l.Token] = l.TxID
			e = &txnEntry{txid: l.TxID, token: l.Token, state: l.State, ttl: l.TTL, renewSeq: l.RenewSeq}
			t.byTxn[l.TxID] = e
		} else if e.token != l.Token || e.state != l.State || e.ttl != l.TTL || e.renewSeq != l.RenewSeq {
			return nil, fmt.Errorf("%w: restore: leases of txid %q disagree: player %q has %+v, txid has token %d state %v ttl %v renew seq %d",
				ErrInvalid, l.TxID, l.Player, l, e.token, e.state, e.ttl, e.renewSeq)
		}
		e.players = append(e.players, l.Player)
		t.byPlayer[l.Player] = e
	}
	for _, e := range t.byTxn {
		slices.Sort(e.players)
	}
	return t, nil
}

// validSnapshotLease checks the fields of one lease on their own.
func validSnapshotLease(l Lease, maxToken uint64) error {
	switch {
	case l.Player == "":
		return fmt.Errorf("%w: restore: lease of txid %q has an empty player", ErrInvalid, l.TxID)
	case l.TxID == "":
		return fmt.Errorf("%w: restore: player %q has an empty txid", ErrInvalid, l.Player)
	case !l.State.valid():
		return fmt.Errorf("%w: restore: player %q has state %v", ErrInvalid, l.Player, l.State)
	case l.TTL <= 0:
		return fmt.Errorf("%w: restore: player %q has ttl %v", ErrInvalid, l.Player, l.TTL)
	case l.Token == 0 || l.Token > maxToken:
		return fmt.Errorf("%w: restore: player %q has token %d, max token %d", ErrInvalid, l.Player, l.Token, maxToken)
	case l.State == Reserved && l.RenewSeq != 0:
		return fmt.Errorf("%w: restore: RESERVED player %q has renew seq %d", ErrInvalid, l.Player, l.RenewSeq)
	}
	return nil
}
