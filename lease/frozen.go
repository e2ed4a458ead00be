package lease

import (
	"cmp"
	"slices"
	"time"
)

// TxnLeases is every lease of one transaction: the fields its leases share, and its
// players. It is how a Frozen lists the table and how a Builder takes it back.
type TxnLeases struct {
	// TxID is the transaction holding the leases.
	TxID string
	// Players are the leased players. Frozen.Each gives them sorted, in a slice the
	// callback must neither change nor keep; Builder.AddTxn accepts any order and keeps
	// the slice.
	Players []string
	// Token, State, TTL and RenewSeq are those of every lease of the transaction.
	Token    uint64
	State    State
	TTL      time.Duration
	RenewSeq uint64
}

// Frozen is the table as it was when Freeze returned. Taking one copies a pointer per
// transaction and nothing else: while any Frozen is outstanding, the table copies a
// transaction's entry before it changes it (copy on write), so the entries a Frozen
// holds never change. That lets another goroutine read a Frozen, for as long as it
// takes, while the table goes on changing: how the coordinator persists a snapshot
// without stopping its state machine.
type Frozen struct {
	t        *Table
	entries  []*txnEntry
	maxToken uint64
	leases   int
	thawed   bool
}

// Freeze returns the table as it is now. Call Thaw when done with it: until then every
// Activate and Renew copies the entry it changes.
func (t *Table) Freeze() *Frozen {
	t.gen++
	t.frozen++
	es := make([]*txnEntry, 0, t.byTxn.Len())
	for e := range t.byTxn.All() {
		es = append(es, e)
	}
	return &Frozen{t: t, entries: es, maxToken: t.maxToken, leases: t.byPlayer.Len()}
}

// writable returns e ready to change: e itself, or while a Frozen may hold e, a copy
// that replaces e in the table.
func (t *Table) writable(e *txnEntry) *txnEntry {
	if t.frozen == 0 || e.gen == t.gen {
		return e
	}
	c := *e
	c.gen = t.gen
	t.byTxn.Swap(c.txid, e, &c)
	for _, p := range c.players {
		t.byPlayer.Swap(p, e, &c)
	}
	return &c
}

// Thaw ends the copy on write this Frozen needed. Like every table method it must be
// serialised with the table's other calls (the Frozen itself may be read anywhere).
// Calling it twice is harmless.
func (f *Frozen) Thaw() {
	if !f.thawed {
		f.thawed = true
		f.t.frozen--
	}
}

// MaxToken is the table's MaxToken when it was frozen.
func (f *Frozen) MaxToken() uint64 { return f.maxToken }

// Txns is the number of transactions holding leases; Leases the number of leases.
func (f *Frozen) Txns() int   { return len(f.entries) }
func (f *Frozen) Leases() int { return f.leases }

// Each calls fn with every transaction's leases in increasing token order (tokens are
// distinct, so the order is the same on every replica), until fn returns an error.
// It may run concurrently with the table's methods. Each sorts on its first call, so
// concurrent calls of Each on one Frozen are not allowed.
func (f *Frozen) Each(fn func(TxnLeases) error) error {
	if !slices.IsSortedFunc(f.entries, byToken) {
		slices.SortFunc(f.entries, byToken)
	}
	for _, e := range f.entries {
		if err := fn(TxnLeases{TxID: e.txid, Players: e.players, Token: e.token, State: e.state, TTL: e.ttl, RenewSeq: e.renewSeq}); err != nil {
			return err
		}
	}
	return nil
}

func byToken(a, b *txnEntry) int { return cmp.Compare(a.token, b.token) }
