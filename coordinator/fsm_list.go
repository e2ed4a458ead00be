package coordinator

import (
	"container/heap"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// TxnQuery selects and pages the transactions FSM.ListTxns returns. The zero value
// selects every transaction the FSM holds, finished ones included.
type TxnQuery struct {
	// States keeps the txns in one of these states (empty: any state).
	States []smv1.TxnState
	// Outcome keeps the decided txns with this outcome (UNSPECIFIED: any txn).
	Outcome smv1.Outcome
	// Shard keeps the txns that involve this shard ("": any).
	Shard string
	// SinceUnixMs keeps the txns begun at or after this leader wall time, in Unix
	// milliseconds (Decision.created_unix_ms; 0: any).
	SinceUnixMs int64
	// Keep, if set, is a last filter on the rebuilt record (it is called for every txn
	// the other filters keep, under the FSM's read lock: keep it cheap).
	Keep func(*smv1.TxnRecord) bool
	// After is the cursor: TxnPage.Next of the previous page ("": the first page).
	After string
	// Limit is the page size (0: no limit).
	Limit int
}

// TxnPage is one page of ListTxns.
type TxnPage struct {
	// Txns are in log order: the order of their Begin entries (fencing token order).
	Txns []*smv1.TxnRecord
	// Total is how many txns match the query on every page.
	Total int
	// Next is the cursor of the following page; "" when this page is the last.
	Next string
}

// ListTxns returns the page of txns that q selects, in log order. A malformed
// q.After is an *InvalidError. It scans every txn
// under the read lock but builds records only for those the cheap filters keep (and
// keeps only a page of them), so a page of a few retained million costs one scan.
func (f *FSM) ListTxns(q TxnQuery) (TxnPage, error) {
	after, err := parseTxnCursor(q.After)
	if err != nil {
		return TxnPage{}, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var page TxnPage
	h := &txnMaxHeap{}
	for t := range f.candidates(q) {
		if !q.keeps(t) {
			continue
		}
		var rec *smv1.TxnRecord
		if q.Keep != nil {
			rec = t.record(nil)
			if !q.Keep(rec) {
				continue
			}
		}
		page.Total++
		k := keyOf(t)
		if !after.less(k) {
			continue
		}
		if q.Limit > 0 && h.Len() == q.Limit+1 {
			if !k.less((*h)[0].key) {
				continue
			}
			heap.Pop(h)
		}
		heap.Push(h, listed{key: k, t: t, rec: rec})
	}
	// The heap holds the Limit+1 smallest keys after the cursor: one more than a page
	// says whether another page follows.
	items := make([]listed, h.Len())
	for i := len(items) - 1; i >= 0; i-- {
		items[i] = heap.Pop(h).(listed)
	}
	if q.Limit > 0 && len(items) > q.Limit {
		items = items[:q.Limit]
		page.Next = items[len(items)-1].key.String()
	}
	page.Txns = make([]*smv1.TxnRecord, len(items))
	for i, it := range items {
		if it.rec == nil {
			it.rec = it.t.record(nil)
		}
		page.Txns[i] = it.rec
	}
	return page, nil
}

// candidates are the txns q may select: the open ones when q asks only for states a
// txn is in before DONE (the console's frequent lists cost what is in flight), else all.
func (f *FSM) candidates(q TxnQuery) iter.Seq[*txn] {
	if len(q.States) == 0 || slices.Contains(q.States, smv1.TxnState_TXN_STATE_DONE) {
		return f.txns.All()
	}
	return func(yield func(*txn) bool) {
		for id := range f.open {
			if !yield(f.txns.Get(id)) {
				return
			}
		}
	}
}

func (q *TxnQuery) keeps(t *txn) bool {
	if len(q.States) > 0 {
		st, ok := t.State(), false
		for _, s := range q.States {
			ok = ok || s == st
		}
		if !ok {
			return false
		}
	}
	if q.Outcome != smv1.Outcome_OUTCOME_UNSPECIFIED && (!twophase.Decided(t.State()) || t.outcomeVal() != q.Outcome) {
		return false
	}
	if q.Shard != "" {
		ok := false
		for _, s := range t.shardIDs() {
			ok = ok || s == q.Shard
		}
		if !ok {
			return false
		}
	}
	return q.SinceUnixMs == 0 || t.createdMs() >= q.SinceUnixMs
}

// createdMs is Decision.created_unix_ms without rebuilding the decision.
func (t *txn) createdMs() int64 {
	if t.x != nil && t.x.dec != nil {
		return t.x.dec.GetCreatedUnixMs()
	}
	return t.created
}

// txnKey orders txns by their fencing token (the Begin's log position), then txid for
// hand-made states that share one.
type txnKey struct {
	token uint64
	id    string
}

func keyOf(t *txn) txnKey { return txnKey{token: t.token, id: t.id} }

func (k txnKey) less(o txnKey) bool {
	if k.token != o.token {
		return k.token < o.token
	}
	return k.id < o.id
}

// String is the cursor form: "<token>.<txid>".
func (k txnKey) String() string { return strconv.FormatUint(k.token, 10) + "." + k.id }

// parseTxnCursor reads a cursor; "" is before every txn.
func parseTxnCursor(s string) (txnKey, error) {
	if s == "" {
		return txnKey{}, nil
	}
	tok, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseUint(tok, 10, 64)
	if !ok || err != nil || id == "" || len(s) > 512 {
		return txnKey{}, &InvalidError{Field: "cursor", Reason: fmt.Sprintf("%q is not a cursor this API returned", s)}
	}
	return txnKey{token: n, id: id}, nil
}

type listed struct {
	key txnKey
	t   *txn
	rec *smv1.TxnRecord
}

// txnMaxHeap keeps the largest key on top, so the smallest N stay.
type txnMaxHeap []listed

func (h txnMaxHeap) Len() int           { return len(h) }
func (h txnMaxHeap) Less(i, j int) bool { return h[j].key.less(h[i].key) }
func (h txnMaxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *txnMaxHeap) Push(x any)        { *h = append(*h, x.(listed)) }
func (h *txnMaxHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// Undelivered reports whether rec is decided and not yet acknowledged by every shard.
func Undelivered(rec *smv1.TxnRecord) bool {
	st := rec.GetState()
	return twophase.Decided(st) && st != smv1.TxnState_TXN_STATE_DONE
}
