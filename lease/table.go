package lease

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/internal/ptrindex"
)

// Table is the pure lease table: the state the coordinator's Raft FSM replicates.
//
// Every method is a deterministic function of the table and its arguments, so replicas
// that apply the same log hold the same table: Table never reads a clock, starts no
// goroutine and takes no lock (the caller serialises all calls), and everything it
// returns is sorted, never in map order. Time enters only as arguments: the TTL a grant
// carries and the renew sequence an Expire was measured against.
//
// All leases of one transaction are granted together and change state together, so the
// table stores them once per transaction and indexes them both by player and by txid:
// Grant, Activate, Renew, Release and Expire cost O(players of the transaction), never
// O(table).
//
// Transaction ids must not be reused for the life of the table (the coordinator derives
// them from Raft indexes). A reused txid would let an Expire measured against an earlier
// holder of that txid, still in flight, remove the later one.
type Table struct {
	// byPlayer indexes each entry under each of its players, byTxn under its txid:
	// ptrindex costs about half a Go map's memory at a million leases.
	byPlayer *ptrindex.Index[txnEntry]
	byTxn    *ptrindex.Index[txnEntry]
	maxToken uint64
	// gen counts Freeze calls and frozen the Frozen views not yet thawed: while any
	// is, an entry of an older generation is copied before it changes (frozen.go).
	gen    uint32
	frozen int
}

// txnEntry is one transaction's leases: the fields every lease of the txn shares, and
// its players, sorted and distinct. An entry a Frozen may hold never changes: see
// Table.writable.
type txnEntry struct {
	txid     string
	players  []string
	token    uint64
	ttl      time.Duration
	renewSeq uint64
	gen      uint32
	state    State
}

func (e *txnEntry) lease(player string) Lease {
	return Lease{Player: player, TxID: e.txid, Token: e.token, State: e.state, TTL: e.ttl, RenewSeq: e.renewSeq}
}

// leases returns the txn's leases sorted by player (e.players is kept sorted).
func (e *txnEntry) leases() []Lease {
	out := make([]Lease, len(e.players))
	for i, p := range e.players {
		out[i] = e.lease(p)
	}
	return out
}

// NewTable returns an empty table whose first grant may use any token above zero.
func NewTable() *Table { return newTable(0, 0, 0) }

// newTable returns an empty table sized for txns transactions and leases leases.
func newTable(maxToken uint64, txns, leases int) *Table {
	return &Table{byPlayer: ptrindex.New(hasPlayer, leases), byTxn: ptrindex.New(isTxn, txns), maxToken: maxToken}
}

func hasPlayer(e *txnEntry, player string) bool { return slices.Contains(e.players, player) }
func isTxn(e *txnEntry, txid string) bool       { return e.txid == txid }

// Grant reserves every player in players for txid under the fencing token, or changes
// nothing. It is the lease half of a transaction's Begin: a match either holds all its
// players or none, so a half-formed match can never hold anyone.
//
// Errors, checked in this order so the outcome does not depend on map order:
// ErrInvalid for an empty txid, no players, a non-positive ttl, an empty or duplicate
// player id, or a txid that already holds leases; ErrTokenNotIncreasing if token is not
// above MaxToken (tokens strictly increase across the whole table, hence per player); a
// *LeasedError naming every player another txid holds. On success it returns the new
// RESERVED leases sorted by player.
func (t *Table) Grant(txid string, players []string, token uint64, ttl time.Duration) ([]Lease, error) {
	switch {
	case txid == "":
		return nil, fmt.Errorf("%w: empty txid", ErrInvalid)
	case len(players) == 0:
		return nil, fmt.Errorf("%w: txid %q: no players", ErrInvalid, txid)
	case ttl <= 0:
		return nil, fmt.Errorf("%w: txid %q: ttl %v must be positive", ErrInvalid, txid, ttl)
	}
	sorted := slices.Clone(players)
	slices.Sort(sorted)
	for i, p := range sorted {
		if p == "" {
			return nil, fmt.Errorf("%w: txid %q: empty player id", ErrInvalid, txid)
		}
		if i > 0 && sorted[i-1] == p {
			return nil, fmt.Errorf("%w: txid %q: duplicate player %q", ErrInvalid, txid, p)
		}
	}
	if t.byTxn.Get(txid) != nil {
		return nil, fmt.Errorf("%w: txid %q already holds leases", ErrInvalid, txid)
	}
	if token <= t.maxToken {
		return nil, fmt.Errorf("%w: txid %q: token %d, table has issued %d", ErrTokenNotIncreasing, txid, token, t.maxToken)
	}
	var busy map[string]string
	for _, p := range sorted {
		if h := t.byPlayer.Get(p); h != nil {
			if busy == nil {
				busy = make(map[string]string)
			}
			busy[p] = h.txid
		}
	}
	if busy != nil {
		return nil, &LeasedError{Holders: busy}
	}
	e := &txnEntry{txid: txid, players: sorted, token: token, state: Reserved, ttl: ttl, gen: t.gen}
	t.byTxn.Insert(txid, e)
	for _, p := range sorted {
		t.byPlayer.Insert(p, e)
	}
	t.maxToken = token
	return e.leases(), nil
}

// Activate turns every RESERVED lease of txid ACTIVE: the transaction committed and the
// match now runs. RenewSeq stays 0; the TTL starts counting wherever expiry is measured
// (the leader), not here. ErrNotFound if txid holds nothing, ErrWrongState if its leases
// are already ACTIVE (the caller decides whether a duplicate is harmless).
func (t *Table) Activate(txid string) error {
	e := t.byTxn.Get(txid)
	if e == nil {
		return fmt.Errorf("%w: activate: txid %q holds no leases", ErrNotFound, txid)
	}
	if e.state != Reserved {
		return fmt.Errorf("%w: activate: txid %q is %v", ErrWrongState, txid, e.state)
	}
	t.writable(e).state = Active
	return nil
}

// Renew records that the match host renewed txid's leases and returns the new renew
// sequence. The sequence is what makes expiry safe without a clock in the FSM: an
// Expire measured before this renew carries an older sequence and is ignored.
// ErrNotFound if txid holds nothing, ErrWrongState if its leases are RESERVED (a
// reserved lease has no TTL running, so there is nothing to renew).
func (t *Table) Renew(txid string) (uint64, error) {
	e := t.byTxn.Get(txid)
	if e == nil {
		return 0, fmt.Errorf("%w: renew: txid %q holds no leases", ErrNotFound, txid)
	}
	if e.state != Active {
		return 0, fmt.Errorf("%w: renew: txid %q is %v", ErrWrongState, txid, e.state)
	}
	e = t.writable(e)
	e.renewSeq++
	return e.renewSeq, nil
}

// Release removes every lease of txid, in any state: the coordinator uses it for an
// aborted transaction and for a match that ended. It returns the removed leases sorted
// by player, so the caller can tell the shards which players are free. ErrNotFound if
// txid holds nothing, so a duplicate release is visible to the caller.
func (t *Table) Release(txid string) ([]Lease, error) {
	e := t.byTxn.Get(txid)
	if e == nil {
		return nil, fmt.Errorf("%w: release: txid %q holds no leases", ErrNotFound, txid)
	}
	t.remove(e)
	return e.leases(), nil
}

// Expire removes txid's leases if they are ACTIVE and have not been renewed since the
// leader measured them, that is if RenewSeq still equals renewSeq. It returns
// (removed, true, nil) when it expired them and (nil, false, nil) when a renew came in
// between: a stale measurement is an expected race, not an error. ErrNotFound if txid
// holds nothing; ErrWrongState if its leases are RESERVED, which never expire (the
// transaction's decision ends them).
func (t *Table) Expire(txid string, renewSeq uint64) ([]Lease, bool, error) {
	e := t.byTxn.Get(txid)
	if e == nil {
		return nil, false, fmt.Errorf("%w: expire: txid %q holds no leases", ErrNotFound, txid)
	}
	if e.state != Active {
		return nil, false, fmt.Errorf("%w: expire: txid %q is %v", ErrWrongState, txid, e.state)
	}
	if e.renewSeq != renewSeq {
		return nil, false, nil
	}
	t.remove(e)
	return e.leases(), true, nil
}

func (t *Table) remove(e *txnEntry) {
	t.byTxn.Remove(e.txid, e)
	for _, p := range e.players {
		t.byPlayer.Remove(p, e)
	}
}

// Get returns player's lease, if it has one.
func (t *Table) Get(player string) (Lease, bool) {
	e := t.byPlayer.Get(player)
	if e == nil {
		return Lease{}, false
	}
	return e.lease(player), true
}

// TxnLeases returns txid's leases sorted by player, or nil if it holds none.
func (t *Table) TxnLeases(txid string) []Lease {
	e := t.byTxn.Get(txid)
	if e == nil {
		return nil
	}
	return e.leases()
}

// Len returns the number of leased players.
func (t *Table) Len() int { return t.byPlayer.Len() }

// MaxToken returns the highest fencing token the table has ever issued (or was restored
// with), including tokens of leases since removed. The next Grant must exceed it.
func (t *Table) MaxToken() uint64 { return t.maxToken }

// Match is one ACTIVE transaction as the leader's expiry scanner sees it: enough to
// measure its TTL and to propose Expire(TxID, RenewSeq).
type Match struct {
	// TxID is the transaction holding the leases.
	TxID string
	// TTL is how long the match lives after its last Activate or Renew.
	TTL time.Duration
	// RenewSeq is the renew sequence to measure from and to pass to Expire.
	RenewSeq uint64
	// Players are the match's players, sorted. The slice is the caller's to keep.
	Players []string
}

// ActiveMatches returns every ACTIVE transaction sorted by TxID: the set a new leader
// starts counting full TTLs for, and what its expiry scanner iterates.
func (t *Table) ActiveMatches() []Match {
	var out []Match
	for e := range t.byTxn.All() {
		if e.state == Active {
			out = append(out, Match{TxID: e.txid, TTL: e.ttl, RenewSeq: e.renewSeq, Players: slices.Clone(e.players)})
		}
	}
	slices.SortFunc(out, func(a, b Match) int { return strings.Compare(a.TxID, b.TxID) })
	return out
}
