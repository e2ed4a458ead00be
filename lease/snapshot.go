package lease

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Snapshot returns every lease sorted by player. Together with MaxToken it is the whole
// table: RestoreTable(t.Snapshot(), t.MaxToken()) rebuilds an equal table, which is how
// the FSM persists the table in a Raft snapshot.
func (t *Table) Snapshot() []Lease {
	out := make([]Lease, 0, t.byPlayer.Len())
	for e := range t.byTxn.All() {
		for _, p := range e.players {
			out = append(out, e.lease(p))
		}
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
	b := NewBuilder(maxToken, 0, len(leases))
	for _, l := range leases {
		if err := b.Add(l); err != nil {
			return nil, err
		}
	}
	return b.Table()
}

// Builder rebuilds a table from a snapshot read as a stream, one lease or one
// transaction at a time, without holding the whole snapshot: RestoreTable is Add of
// every lease then Table, and accepts and refuses exactly the same.
type Builder struct {
	t   *Table
	err error
	// last is the highest token of an entry AddTxn created. unordered: an entry came
	// out of increasing token order, or from Add (then Table sorts players and checks
	// that no two entries share a token; in order, none can).
	last      uint64
	unordered bool
}

// NewBuilder starts a table whose MaxToken is maxToken. txns and leases, if known,
// size the table for that many transactions and leases.
func NewBuilder(maxToken uint64, txns, leases int) *Builder {
	return &Builder{t: newTable(maxToken, txns, leases)}
}

// Add adds one lease. After an error the builder is spent: Table returns the error.
func (b *Builder) Add(l Lease) error {
	if b.err == nil {
		b.unordered = true
		b.err = b.add(l)
	}
	return b.err
}

// AddTxn adds every lease of one transaction, as Add of each of its players would, and
// keeps tl.Players. It is quickest for transactions in increasing token order (as
// Frozen.Each lists them), each added once.
func (b *Builder) AddTxn(tl TxnLeases) error {
	if b.err != nil {
		return b.err
	}
	t := b.t
	if len(tl.Players) == 0 {
		return nil
	}
	ordered := tl.Token > b.last
	if !ordered {
		if t.byTxn.Get(tl.TxID) != nil {
			b.unordered = true
			for _, p := range tl.Players {
				if b.err = b.add(Lease{Player: p, TxID: tl.TxID, Token: tl.Token, State: tl.State, TTL: tl.TTL, RenewSeq: tl.RenewSeq}); b.err != nil {
					return b.err
				}
			}
			return nil
		}
		b.unordered = true
	}
	l := Lease{TxID: tl.TxID, Token: tl.Token, State: tl.State, TTL: tl.TTL, RenewSeq: tl.RenewSeq}
	if !slices.IsSorted(tl.Players) {
		slices.Sort(tl.Players)
	}
	// Check every player before indexing any: an entry's own players may match one
	// another's slots (ptrindex), so it must not be in the index while they are checked.
	for i, p := range tl.Players {
		l.Player = p
		if b.err = validSnapshotLease(l, t.maxToken); b.err != nil {
			return b.err
		}
		if i > 0 && tl.Players[i-1] == p || t.byPlayer.Get(p) != nil {
			b.err = fmt.Errorf("%w: restore: player %q leased twice", ErrInvalid, p)
			return b.err
		}
	}
	e := &txnEntry{txid: tl.TxID, token: tl.Token, state: tl.State, ttl: tl.TTL, renewSeq: tl.RenewSeq, players: tl.Players}
	if t.byTxn.Put(tl.TxID, e) != nil {
		// Only when ordered: an entry of tl.TxID came earlier, with a lower token.
		b.err = fmt.Errorf("%w: restore: leases of txid %q disagree: token %d after a lower one", ErrInvalid, tl.TxID, tl.Token)
		return b.err
	}
	for _, p := range tl.Players {
		t.byPlayer.Insert(p, e)
	}
	b.last = max(b.last, tl.Token)
	return nil
}

// add adds lease l.
func (b *Builder) add(l Lease) error {
	t := b.t
	if err := validSnapshotLease(l, t.maxToken); err != nil {
		return err
	}
	if t.byPlayer.Get(l.Player) != nil {
		return fmt.Errorf("%w: restore: player %q leased twice", ErrInvalid, l.Player)
	}
	e := t.byTxn.Get(l.TxID)
	if e == nil {
		e = &txnEntry{txid: l.TxID, token: l.Token, state: l.State, ttl: l.TTL, renewSeq: l.RenewSeq}
		t.byTxn.Insert(l.TxID, e)
	} else if e.token != l.Token || e.state != l.State || e.ttl != l.TTL || e.renewSeq != l.RenewSeq {
		return fmt.Errorf("%w: restore: leases of txid %q disagree: player %q has %+v, txid has token %d state %v ttl %v renew seq %d",
			ErrInvalid, l.TxID, l.Player, l, e.token, e.state, e.ttl, e.renewSeq)
	}
	e.players = append(e.players, l.Player)
	t.byPlayer.Insert(l.Player, e)
	return nil
}

// Table checks what only the whole table shows (two txids sharing a token), sorts each
// transaction's players and returns the table, or the first error.
func (b *Builder) Table() (*Table, error) {
	if b.err != nil {
		return nil, b.err
	}
	var es []*txnEntry
	if b.unordered {
		es = make([]*txnEntry, 0, b.t.byTxn.Len())
		for e := range b.t.byTxn.All() {
			if !slices.IsSorted(e.players) {
				slices.Sort(e.players)
			}
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *txnEntry) int {
		if c := cmp.Compare(a.token, b.token); c != 0 {
			return c
		}
		return strings.Compare(a.txid, b.txid)
	})
	for i := 1; i < len(es); i++ {
		if es[i-1].token == es[i].token {
			b.err = fmt.Errorf("%w: restore: txids %q and %q share token %d", ErrInvalid, es[i-1].txid, es[i].txid, es[i].token)
			return nil, b.err
		}
	}
	t := b.t
	b.t, b.err = nil, errors.New("lease: Builder.Table called twice")
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
