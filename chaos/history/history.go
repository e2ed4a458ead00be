package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// FormatVersion is the version written into every History; ReadJSON refuses others.
const FormatVersion = 1

// ErrVersion is returned by ReadJSON for a history written in an unknown format version.
var ErrVersion = errors.New("history: unsupported format version")

// OpKind names the client call an Op records.
type OpKind string

// Client calls.
const (
	OpPropose OpKind = "propose" // a proposer's Propose
	OpRenew   OpKind = "renew"   // a match host's Renew(txid)
	OpRelease OpKind = "release" // a match host's Release(txid)
)

// OpResult is what a client call told its caller.
type OpResult string

// Results. Committed and Aborted answer a Propose; OK and Fail a Renew or Release.
const (
	ResultCommitted OpResult = "committed"
	ResultAborted   OpResult = "aborted"
	ResultOK        OpResult = "ok"      // renew/release applied
	ResultFail      OpResult = "fail"    // definitely not applied
	ResultUnknown   OpResult = "unknown" // timeout or indeterminate: maybe applied
)

// Definite reports whether the caller learned for certain what happened.
func (r OpResult) Definite() bool {
	switch r {
	case ResultCommitted, ResultAborted, ResultOK, ResultFail:
		return true
	}
	return false
}

// ShardEventKind names an effect a shard applied.
type ShardEventKind string

// Shard effects.
const (
	ShardPrepared  ShardEventKind = "prepared"  // voted YES and journaled the reservation
	ShardVotedNo   ShardEventKind = "voted_no"  // voted NO (nothing journaled but a tombstone, maybe)
	ShardCommitted ShardEventKind = "committed" // applied a Commit
	ShardAborted   ShardEventKind = "aborted"   // applied an Abort (also before any Prepare: a tombstone)
)

// LeaseEventKind names a lease change applied by a coordinator node's FSM.
type LeaseEventKind string

// Lease changes. An event records a change the FSM applied; a command that changed
// nothing (a renew of an expired lease, a duplicate release) records no event.
const (
	LeaseGranted   LeaseEventKind = "granted"   // Begin: RESERVED lease on every player
	LeaseActivated LeaseEventKind = "activated" // Decide(COMMIT): RESERVED -> ACTIVE
	LeaseRenewed   LeaseEventKind = "renewed"   // Renew(txid)
	LeaseReleased  LeaseEventKind = "released"  // Release(txid)
	LeaseExpired   LeaseEventKind = "expired"   // Expire(player, renew_seq)
	LeaseFreed     LeaseEventKind = "freed"     // Decide(ABORT): leases deleted
	// LeaseRestored is a marker, not a change: the node restored or installed a
	// snapshot whose last index is Index. Entries up to Index may be missing from the
	// node's events, and entries after it may be applied (recorded) again.
	LeaseRestored LeaseEventKind = "restored"
)

// Transaction states and outcomes as a node's FSM reports them in TxnFinal.
const (
	StatePreparing = "PREPARING"
	StateCommitted = "COMMITTED" // decided, not yet acked by every shard
	StateAborted   = "ABORTED"   // decided, not yet acked by every shard
	StateDone      = "DONE"

	OutcomeCommitted = "COMMITTED"
	OutcomeAborted   = "ABORTED"
)

// Lease states in LeaseFinal.
const (
	StateReserved = "RESERVED"
	StateActive   = "ACTIVE"
)

// PlayerRef is a player and the shard that owns it.
type PlayerRef struct {
	Player string `json:"player"`
	Shard  string `json:"shard"`
}

// PlayerToken is a player and its fencing token; Token 0 means "not recorded".
type PlayerToken struct {
	Player string `json:"player"`
	Token  uint64 `json:"token,omitempty"`
}

// Op is one client call: a proposer's Propose, or a match host's Renew or Release.
// Invoke and Return are on the reference clock.
type Op struct {
	Process    string            `json:"process"`
	Kind       OpKind            `json:"kind"`
	ProposalID string            `json:"proposal_id,omitempty"`
	TxID       string            `json:"txid,omitempty"`    // known after return; given for renew/release
	Players    []PlayerRef       `json:"players,omitempty"` // propose: every player with its shard
	TTL        time.Duration     `json:"ttl_ns,omitempty"`  // propose: match TTL
	Invoke     time.Duration     `json:"invoke_ns"`
	Return     time.Duration     `json:"return_ns,omitempty"`
	Returned   bool              `json:"returned"`
	Result     OpResult          `json:"result,omitempty"`
	Reason     string            `json:"reason,omitempty"` // abort reason, e.g. PLAYER_LEASED
	Tokens     map[string]uint64 `json:"tokens,omitempty"` // propose committed: token per player
}

// ShardEvent is an effect a shard applied. Seq orders one shard's events in the order
// the shard applied them; At is on the reference clock.
type ShardEvent struct {
	Shard   string         `json:"shard"`
	Seq     uint64         `json:"seq"`
	At      time.Duration  `json:"at_ns"`
	Kind    ShardEventKind `json:"kind"`
	TxID    string         `json:"txid"`
	Players []PlayerToken  `json:"players,omitempty"`
}

// LeaseEvent is a lease change as one coordinator node applied it from the replicated
// log. Index is the Raft index of the entry; events of one batched entry share it and
// keep their recorded order. Empty Players means every player the txn still holds.
type LeaseEvent struct {
	Node     string         `json:"node"`
	Index    uint64         `json:"index"`
	At       time.Duration  `json:"at_ns"`
	Kind     LeaseEventKind `json:"kind"`
	TxID     string         `json:"txid,omitempty"`
	Players  []PlayerToken  `json:"players,omitempty"`
	TTL      time.Duration  `json:"ttl_ns,omitempty"`
	RenewSeq uint64         `json:"renew_seq,omitempty"`
}

// Final is what every node and shard holds after the run. Each NodeFinal must be one
// consistent snapshot of that node's FSM at AppliedIndex.
type Final struct {
	Nodes  map[string]NodeFinal  `json:"nodes,omitempty"`
	Shards map[string]ShardFinal `json:"shards,omitempty"`
}

// NodeFinal is one coordinator node's FSM view.
type NodeFinal struct {
	Txns         []TxnFinal   `json:"txns,omitempty"`
	Leases       []LeaseFinal `json:"leases,omitempty"`
	AppliedIndex uint64       `json:"applied_index,omitempty"`
}

// TxnFinal is one transaction as a node holds it (compacted transactions are absent).
type TxnFinal struct {
	TxID       string      `json:"txid"`
	ProposalID string      `json:"proposal_id,omitempty"`
	State      string      `json:"state"`             // PREPARING, COMMITTED, ABORTED, DONE
	Outcome    string      `json:"outcome,omitempty"` // COMMITTED, ABORTED or "" while undecided
	Reason     string      `json:"reason,omitempty"`
	Shards     []string    `json:"shards,omitempty"`
	Acked      []string    `json:"acked,omitempty"`
	Players    []PlayerRef `json:"players,omitempty"`
	Token      uint64      `json:"token,omitempty"`
}

// Decision is the txn's outcome, taken from State when Outcome is empty; "" if undecided.
func (t *TxnFinal) Decision() string {
	switch {
	case t.Outcome != "":
		return t.Outcome
	case t.State == StateCommitted:
		return OutcomeCommitted
	case t.State == StateAborted:
		return OutcomeAborted
	}
	return ""
}

// LeaseFinal is one live lease in a node's lease table.
type LeaseFinal struct {
	Player string `json:"player"`
	TxID   string `json:"txid"`
	Token  uint64 `json:"token,omitempty"`
	State  string `json:"state"` // RESERVED or ACTIVE
}

// ShardFinal is a shard's journal: txids by journal state.
type ShardFinal struct {
	Prepared  []string `json:"prepared,omitempty"`
	Committed []string `json:"committed,omitempty"`
	Aborted   []string `json:"aborted,omitempty"`
}

// History is everything one test or chaos run recorded. All times are durations on
// one reference monotonic clock, never a node's own (possibly skewed) clock.
type History struct {
	Version     int          `json:"version"`
	Rho         float64      `json:"rho"`     // clock rate error bound, e.g. 0.01
	Settled     bool         `json:"settled"` // Final taken after faults healed and settle time passed
	Ops         []Op         `json:"ops"`
	ShardEvents []ShardEvent `json:"shard_events"`
	LeaseEvents []LeaseEvent `json:"lease_events"`
	Final       Final        `json:"final"`
}

// WriteJSON writes h as indented JSON, stamping the current FormatVersion.
func (h *History) WriteJSON(w io.Writer) error {
	c := *h
	c.Version = FormatVersion
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(&c)
}

// ReadJSON reads a history written by WriteJSON.
func ReadJSON(r io.Reader) (*History, error) {
	var h History
	if err := json.NewDecoder(r).Decode(&h); err != nil {
		return nil, fmt.Errorf("history: decode: %w", err)
	}
	if h.Version != FormatVersion {
		return nil, fmt.Errorf("%w: %d (want %d)", ErrVersion, h.Version, FormatVersion)
	}
	return &h, nil
}

// Clone returns a deep copy of h.
func (h *History) Clone() *History {
	c := *h
	c.Ops = slices.Clone(h.Ops)
	for i := range c.Ops {
		c.Ops[i].Players = slices.Clone(c.Ops[i].Players)
		c.Ops[i].Tokens = maps.Clone(c.Ops[i].Tokens)
	}
	c.ShardEvents = slices.Clone(h.ShardEvents)
	for i := range c.ShardEvents {
		c.ShardEvents[i].Players = slices.Clone(c.ShardEvents[i].Players)
	}
	c.LeaseEvents = slices.Clone(h.LeaseEvents)
	for i := range c.LeaseEvents {
		c.LeaseEvents[i].Players = slices.Clone(c.LeaseEvents[i].Players)
	}
	c.Final = h.Final.Clone()
	return &c
}

// Clone returns a deep copy of f.
func (f Final) Clone() Final {
	var c Final
	if f.Nodes != nil {
		c.Nodes = make(map[string]NodeFinal, len(f.Nodes))
		for id, n := range f.Nodes {
			txns := slices.Clone(n.Txns)
			for i := range txns {
				txns[i].Shards = slices.Clone(txns[i].Shards)
				txns[i].Acked = slices.Clone(txns[i].Acked)
				txns[i].Players = slices.Clone(txns[i].Players)
			}
			c.Nodes[id] = NodeFinal{Txns: txns, Leases: slices.Clone(n.Leases), AppliedIndex: n.AppliedIndex}
		}
	}
	if f.Shards != nil {
		c.Shards = make(map[string]ShardFinal, len(f.Shards))
		for id, s := range f.Shards {
			c.Shards[id] = ShardFinal{
				Prepared:  slices.Clone(s.Prepared),
				Committed: slices.Clone(s.Committed),
				Aborted:   slices.Clone(s.Aborted),
			}
		}
	}
	return c
}
