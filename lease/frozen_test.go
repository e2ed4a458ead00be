package lease

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// frozenLeases flattens a Frozen into leases, in Each's order.
func frozenLeases(t *testing.T, f *Frozen) []Lease {
	t.Helper()
	var out []Lease
	var last uint64
	err := f.Each(func(tl TxnLeases) error {
		if tl.Token <= last {
			return fmt.Errorf("token %d after %d: not in token order", tl.Token, last)
		}
		last = tl.Token
		for _, p := range tl.Players {
			out = append(out, Lease{Player: p, TxID: tl.TxID, Token: tl.Token, State: tl.State, TTL: tl.TTL, RenewSeq: tl.RenewSeq})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFrozenKeepsTheTableAsItWas: every change after Freeze (grant, activate, renew,
// release, expire) leaves the Frozen as it was, and once thawed the table changes its
// entries in place again.
func TestFrozenKeepsTheTableAsItWas(t *testing.T) {
	tb := NewTable()
	mustGrant := func(txid string, token uint64, players ...string) {
		t.Helper()
		if _, err := tb.Grant(txid, players, token, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	mustGrant("t1", 1, "b", "a")
	mustGrant("t2", 2, "c")
	mustGrant("t3", 3, "d")
	if err := tb.Activate("t2"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Activate("t3"); err != nil {
		t.Fatal(err)
	}
	want := tb.Snapshot()
	f := tb.Freeze()
	if err := tb.Activate("t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Renew("t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Renew("t2"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Release("t3"); err != nil {
		t.Fatal(err)
	}
	mustGrant("t4", 4, "e")
	got := frozenLeases(t, f)
	// Each lists by token, Snapshot by player: both orders coincide here.
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frozen %+v\nwant   %+v", got, want)
	}
	if f.MaxToken() != 3 || f.Txns() != 3 || f.Leases() != 4 {
		t.Fatalf("frozen max token %d, %d txns, %d leases", f.MaxToken(), f.Txns(), f.Leases())
	}
	if l, _ := tb.Get("a"); l.State != Active || l.RenewSeq != 1 {
		t.Fatalf("table after the changes: %+v", l)
	}
	f.Thaw()
	f.Thaw() // harmless
	if tb.frozen != 0 {
		t.Fatalf("%d frozen after Thaw", tb.frozen)
	}
	before := tb.byTxn.Get("t2")
	if _, err := tb.Renew("t2"); err != nil {
		t.Fatal(err)
	}
	if tb.byTxn.Get("t2") != before || tb.byPlayer.Get("c") != before {
		t.Fatal("thawed table still copies on write")
	}
	checkIndexes(t, tb)
}

// TestFrozenReadConcurrently: a Frozen read while the table changes (run with -race).
func TestFrozenReadConcurrently(t *testing.T) {
	tb := NewTable()
	for i := range 200 {
		if _, err := tb.Grant(fmt.Sprint("t", i), []string{fmt.Sprint("p", i), fmt.Sprint("q", i)}, uint64(i+1), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	want := tb.Snapshot()
	f := tb.Freeze()
	var wg sync.WaitGroup
	var got []Lease
	wg.Go(func() { got = frozenLeases(t, f) })
	for i := range 200 {
		id := fmt.Sprint("t", i)
		_ = tb.Activate(id)
		_, _ = tb.Renew(id)
		if i%3 == 0 {
			_, _ = tb.Release(id)
		}
	}
	wg.Wait()
	f.Thaw()
	if len(got) != len(want) {
		t.Fatalf("frozen has %d leases, want %d", len(got), len(want))
	}
	for _, l := range got {
		if l.State != Reserved || l.RenewSeq != 0 {
			t.Fatalf("frozen lease changed: %+v", l)
		}
	}
	checkIndexes(t, tb)
}

// FuzzBuilderAddTxn: adding a snapshot's leases grouped by transaction (AddTxn)
// accepts and refuses exactly what RestoreTable does, and builds the same table.
func FuzzBuilderAddTxn(f *testing.F) {
	tb := NewTable()
	_, _ = tb.Grant("t1", []string{"a", "c"}, 2, time.Second)
	_, _ = tb.Grant("t2", []string{"b"}, 5, 2*time.Second)
	_ = tb.Activate("t2")
	f.Add(encodeSnapshot(tb.Snapshot(), 12))
	f.Add(encodeSnapshot(append(tb.Snapshot(), Lease{Player: "a", TxID: "t4", Token: 10, State: Reserved, TTL: time.Second}), 12))
	f.Add(encodeSnapshot(append(tb.Snapshot(), Lease{Player: "d", TxID: "t4", Token: 5, State: Reserved, TTL: time.Second}), 12))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, maxToken := decodeSnapshot(data)
		want, wantErr := RestoreTable(in, maxToken)
		// Group consecutive leases of one txid, as a snapshot stream lists them.
		b := NewBuilder(maxToken, 0, 0)
		var err error
		for i := 0; i < len(in) && err == nil; {
			j := i + 1
			for j < len(in) && in[j] == (Lease{Player: in[j].Player, TxID: in[i].TxID, Token: in[i].Token, State: in[i].State, TTL: in[i].TTL, RenewSeq: in[i].RenewSeq}) {
				j++
			}
			tl := TxnLeases{TxID: in[i].TxID, Token: in[i].Token, State: in[i].State, TTL: in[i].TTL, RenewSeq: in[i].RenewSeq}
			for _, l := range in[i:j] {
				tl.Players = append(tl.Players, l.Player)
			}
			err = b.AddTxn(tl)
			i = j
		}
		got, err := b.Table()
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("AddTxn: %v; RestoreTable: %v", err, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		checkIndexes(t, got)
		if !reflect.DeepEqual(got.Snapshot(), want.Snapshot()) || got.MaxToken() != want.MaxToken() {
			t.Fatalf("AddTxn built %+v, RestoreTable %+v", got.Snapshot(), want.Snapshot())
		}
	})
}
