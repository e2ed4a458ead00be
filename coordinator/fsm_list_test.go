package coordinator

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// listAll follows the cursors of q from the first page to the last.
func listAll(t *testing.T, f *FSM, q TxnQuery) (ids []string, totals []int) {
	t.Helper()
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the cursors never end")
		}
		p, err := f.ListTxns(q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Limit > 0 && len(p.Txns) > q.Limit {
			t.Fatalf("a page of %d txns, over the limit %d", len(p.Txns), q.Limit)
		}
		for _, r := range p.Txns {
			ids = append(ids, r.GetTxid())
		}
		totals = append(totals, p.Total)
		if p.Next == "" {
			return ids, totals
		}
		q.After = p.Next
	}
}

func TestFSMListTxnsPagesInLogOrder(t *testing.T) {
	h := newFSMHarness(t, "s1", "s2", "s3")
	var all []string // in log order
	want := map[string]smv1.TxnState{}
	// Indexes 4..15 with one to three Begins each: txids like tx-9-0 and tx-10-0, whose
	// string order is not log order.
	for i := 0; len(all) < 23; i++ {
		var cmds []*smv1.Command
		for pos := 0; pos <= i%3; pos++ {
			n := len(all) + pos
			shard := []string{"s1", "s2", "s3"}[n%3]
			cmds = append(cmds, begin(proposal(fmt.Sprintf("p%d", n), fmt.Sprintf("a%d@%s", n, shard), fmt.Sprintf("b%d@s1", n))))
		}
		for _, r := range h.apply(cmds...) {
			all = append(all, h.mustOK(r).Txn.GetTxid())
		}
	}
	for i, id := range all {
		switch i % 4 {
		case 1:
			h.mustOK(h.apply(decide(id, committed))[0])
		case 2:
			h.mustOK(h.apply(decide(id, aborted))[0])
			rec, _ := h.f.Txn(id)
			for _, s := range rec.GetShards() {
				h.mustOK(h.apply(acked(id, s))[0])
			}
		}
		rec, _ := h.f.Txn(id)
		want[id] = rec.GetState()
	}

	for _, limit := range []int{0, 1, 4, 23, 50} {
		got, totals := listAll(t, h.f, TxnQuery{Limit: limit})
		if !slices.Equal(got, all) {
			t.Errorf("limit %d: listed\n%v\nwant every txn once, in log order:\n%v", limit, got, all)
		}
		for _, n := range totals {
			if n != len(all) {
				t.Errorf("limit %d: a page says total %d, want %d", limit, n, len(all))
			}
		}
	}
	// Filters: each page holds only what the filter keeps, and together every one.
	filters := map[string]struct {
		q    TxnQuery
		keep func(id string, rec *smv1.TxnRecord) bool
	}{
		"preparing": {TxnQuery{States: []smv1.TxnState{smv1.TxnState_TXN_STATE_PREPARING}},
			func(_ string, r *smv1.TxnRecord) bool { return r.GetState() == smv1.TxnState_TXN_STATE_PREPARING }},
		"done": {TxnQuery{States: []smv1.TxnState{smv1.TxnState_TXN_STATE_DONE}},
			func(_ string, r *smv1.TxnRecord) bool { return r.GetState() == smv1.TxnState_TXN_STATE_DONE }},
		"shard s2":         {TxnQuery{Shard: "s2"}, func(_ string, r *smv1.TxnRecord) bool { return slices.Contains(r.GetShards(), "s2") }},
		"keep undelivered": {TxnQuery{Keep: Undelivered}, func(_ string, r *smv1.TxnRecord) bool { return Undelivered(r) }},
	}
	for name, c := range filters {
		var expect []string
		for _, id := range all {
			rec, _ := h.f.Txn(id)
			if c.keep(id, rec) {
				expect = append(expect, id)
			}
		}
		if len(expect) == 0 || len(expect) == len(all) {
			t.Fatalf("%s: the fixture makes the filter trivial (%d of %d)", name, len(expect), len(all))
		}
		q := c.q
		q.Limit = 3
		got, totals := listAll(t, h.f, q)
		if !slices.Equal(got, expect) {
			t.Errorf("%s: listed %v, want %v", name, got, expect)
		}
		if totals[0] != len(expect) {
			t.Errorf("%s: total %d, want %d", name, totals[0], len(expect))
		}
	}
	// A page whose cursor points past the end is empty and the last.
	p, err := h.f.ListTxns(TxnQuery{After: fmt.Sprintf("%d.zz", uint64(1)<<62), Limit: 5})
	if err != nil || len(p.Txns) != 0 || p.Next != "" || p.Total != len(all) {
		t.Errorf("past the end: %d txns, next %q, total %d, err %v", len(p.Txns), p.Next, p.Total, err)
	}
	for _, bad := range []string{"nonsense", "12", ".tx-1-0", "x.tx-1-0"} {
		_, err := h.f.ListTxns(TxnQuery{After: bad})
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != "cursor" {
			t.Errorf("cursor %q: err %v, want an *InvalidError on cursor", bad, err)
		}
	}
}

// BenchmarkListTxns pages through the most finished txns a node keeps by default
// (DefaultMaxRetained, SHARDMATCH_MEM_MATCHES overrides): the cost of one
// GET /v1/txns, spent under the FSM's read lock (Apply waits that long).
//
//	go test -run '^$' -bench ListTxns -benchtime 20x ./coordinator/
func BenchmarkListTxns(b *testing.B) {
	n := DefaultMaxRetained
	if os.Getenv("SHARDMATCH_MEM_MATCHES") != "" {
		n = memMatches(b)
	}
	f := buildMemFSMEnded(b, n, true)
	for _, c := range []struct {
		name string
		q    TxnQuery
	}{
		{"all/first-page", TxnQuery{Limit: 100}},
		{"all/last-page", TxnQuery{Limit: 100, After: "18446744073709551615.z"}},
		{"committed/shard", TxnQuery{Limit: 100, Outcome: smv1.Outcome_OUTCOME_COMMITTED, Shard: memShards[1]}},
		{"unfinished", TxnQuery{Limit: 100, States: []smv1.TxnState{smv1.TxnState_TXN_STATE_PREPARING}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				p, err := f.ListTxns(c.q)
				if err != nil || p.Total == 0 && c.name != "unfinished" {
					b.Fatalf("%+v %v", p, err)
				}
			}
		})
	}
}

// BenchmarkFSMScrapeCounts is what every /metrics scrape and /v1/status asks of the
// FSM (Counts, InDoubtByShard) with the default most retained finished txns and none
// in flight.
func BenchmarkFSMScrapeCounts(b *testing.B) {
	n := DefaultMaxRetained
	if os.Getenv("SHARDMATCH_MEM_MATCHES") != "" {
		n = memMatches(b)
	}
	f := buildMemFSMEnded(b, n, true)
	for b.Loop() {
		if c := f.Counts(); c.Txns != n || c.Preparing+c.Undelivered != 0 || len(f.InDoubtByShard()) != len(memShards) {
			b.Fatalf("counts %+v", c)
		}
	}
}
