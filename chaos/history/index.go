package history

import (
	"cmp"
	"slices"
)

// analysis holds the indexes every checker shares, built once per Check. The lease
// log and its replay are built on first use.
type analysis struct {
	h *History

	proposes map[string][]*Op // proposal id -> propose ops
	txOps    map[string][]*Op // txid -> ops that name it (any kind)

	shardLog map[string][]ShardEvent         // shard -> events in Seq order
	shardTx  map[string]map[string]*shardTxn // shard -> txid -> summary
	journal  map[string]map[string][]string  // shard -> txid -> final journal lists holding it
	finals   map[string][]nodeTxn            // txid -> the txn on each node (node order)
	pidTxs   map[string]map[string]struct{}  // proposal id -> txids seen for it
	shards   []string                        // every shard id, sorted
	nodes    []string                        // every node id in Final, sorted

	log    *leaseLog
	replay *replay
	txPos  map[string][]int // txid -> canonical lease event positions
	notes  map[string]struct{}
}

// shardTxn summarizes what one shard did for one txid.
type shardTxn struct {
	prepared, votedNo, committed, aborted int
	firstAbortSeq                         uint64        // 0: none
	preparedAfterAbort                    bool          // a prepare applied after the abort (tombstone ignored)
	noAfterYes                            bool          // voted NO after having journaled a YES
	committedPlayers                      []PlayerToken // from the first committed event
}

// nodeTxn is a txn as one node holds it.
type nodeTxn struct {
	node string
	t    *TxnFinal
}

func newAnalysis(h *History) *analysis {
	a := &analysis{
		h:        h,
		proposes: make(map[string][]*Op),
		txOps:    make(map[string][]*Op),
		shardLog: make(map[string][]ShardEvent),
		shardTx:  make(map[string]map[string]*shardTxn),
		journal:  make(map[string]map[string][]string),
		finals:   make(map[string][]nodeTxn),
		pidTxs:   make(map[string]map[string]struct{}),
		notes:    make(map[string]struct{}),
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == OpPropose && op.ProposalID != "" {
			a.proposes[op.ProposalID] = append(a.proposes[op.ProposalID], op)
			if op.TxID != "" {
				a.addPID(op.ProposalID, op.TxID)
			}
		}
		if op.TxID != "" {
			a.txOps[op.TxID] = append(a.txOps[op.TxID], op)
		}
	}
	shardSet := make(map[string]struct{})
	for _, ev := range h.ShardEvents {
		a.shardLog[ev.Shard] = append(a.shardLog[ev.Shard], ev)
		shardSet[ev.Shard] = struct{}{}
	}
	for s, evs := range a.shardLog {
		slices.SortStableFunc(evs, func(x, y ShardEvent) int { return cmp.Compare(x.Seq, y.Seq) })
		m := make(map[string]*shardTxn)
		for _, ev := range evs {
			st := m[ev.TxID]
			if st == nil {
				st = &shardTxn{}
				m[ev.TxID] = st
			}
			switch ev.Kind {
			case ShardPrepared:
				st.prepared++
				st.preparedAfterAbort = st.preparedAfterAbort || st.firstAbortSeq != 0
			case ShardVotedNo:
				st.votedNo++
				st.noAfterYes = st.noAfterYes || st.prepared > 0
			case ShardCommitted:
				if st.committed == 0 {
					st.committedPlayers = ev.Players
				}
				st.committed++
			case ShardAborted:
				if st.aborted == 0 {
					st.firstAbortSeq = max(ev.Seq, 1)
				}
				st.aborted++
			}
		}
		a.shardTx[s] = m
	}
	for s, sf := range h.Final.Shards {
		shardSet[s] = struct{}{}
		j := make(map[string][]string)
		for _, l := range []struct {
			name string
			ids  []string
		}{{"prepared", sf.Prepared}, {"committed", sf.Committed}, {"aborted", sf.Aborted}} {
			for _, id := range l.ids {
				j[id] = append(j[id], l.name)
			}
		}
		a.journal[s] = j
	}
	a.shards = sortedKeys(shardSet)
	a.nodes = sortedKeys(h.Final.Nodes)
	for _, n := range a.nodes {
		nf := h.Final.Nodes[n]
		for i := range nf.Txns {
			t := &nf.Txns[i]
			a.finals[t.TxID] = append(a.finals[t.TxID], nodeTxn{node: n, t: t})
			if t.ProposalID != "" {
				a.addPID(t.ProposalID, t.TxID)
			}
		}
	}
	return a
}

func (a *analysis) addPID(pid, tx string) {
	m := a.pidTxs[pid]
	if m == nil {
		m = make(map[string]struct{})
		a.pidTxs[pid] = m
	}
	m[tx] = struct{}{}
}

func (a *analysis) note(s string) { a.notes[s] = struct{}{} }

// committedAt reports whether the shard applied a commit of tx (event or journal).
func (a *analysis) committedAt(shard, tx string) bool {
	if st := a.shardTx[shard][tx]; st != nil && st.committed > 0 {
		return true
	}
	return slices.Contains(a.journal[shard][tx], "committed")
}

// abortedAt reports whether the shard applied an abort of tx (event or journal).
func (a *analysis) abortedAt(shard, tx string) bool {
	if st := a.shardTx[shard][tx]; st != nil && st.aborted > 0 {
		return true
	}
	return slices.Contains(a.journal[shard][tx], "aborted")
}

// txPlayers is the best-known player list of tx: a node's TxnFinal, else a propose op.
func (a *analysis) txPlayers(tx string) []PlayerRef {
	for _, nt := range a.finals[tx] {
		if len(nt.t.Players) > 0 {
			return nt.t.Players
		}
	}
	for _, op := range a.txOps[tx] {
		if op.Kind == OpPropose && len(op.Players) > 0 {
			return op.Players
		}
	}
	return nil
}

// txShards is the set of shards tx involves: a node's TxnFinal, else its players.
func (a *analysis) txShards(tx string) []string {
	set := make(map[string]struct{})
	for _, nt := range a.finals[tx] {
		for _, s := range nt.t.Shards {
			set[s] = struct{}{}
		}
	}
	if len(set) == 0 {
		for _, p := range a.txPlayers(tx) {
			set[p.Shard] = struct{}{}
		}
	}
	return sortedKeys(set)
}

// shardsOf is the sorted set of shards of a player list.
func shardsOf(ps []PlayerRef) []string {
	set := make(map[string]struct{}, len(ps))
	for _, p := range ps {
		set[p.Shard] = struct{}{}
	}
	return sortedKeys(set)
}

// proposalOf is the proposal id of tx, from ops or node finals; "" if unknown.
func (a *analysis) proposalOf(tx string) string {
	for _, op := range a.txOps[tx] {
		if op.Kind == OpPropose && op.ProposalID != "" {
			return op.ProposalID
		}
	}
	for _, nt := range a.finals[tx] {
		if nt.t.ProposalID != "" {
			return nt.t.ProposalID
		}
	}
	return ""
}

// allTxIDs is every txid named by a shard event, a shard journal or a node final, sorted.
func (a *analysis) allTxIDs() []string {
	set := make(map[string]struct{})
	for _, m := range a.shardTx {
		for tx := range m {
			set[tx] = struct{}{}
		}
	}
	for _, j := range a.journal {
		for tx := range j {
			set[tx] = struct{}{}
		}
	}
	for tx := range a.finals {
		set[tx] = struct{}{}
	}
	return sortedKeys(set)
}
