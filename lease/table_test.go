package lease

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixture is a table with txA RESERVED on p1,p2 (token 5) and txB ACTIVE on p3 (token
// 7, renewed once), so every error path has something to leave unchanged.
func fixture(t *testing.T) *Table {
	t.Helper()
	tb := NewTable()
	mustGrant(t, tb, "txA", 5, "p2", "p1")
	mustGrant(t, tb, "txB", 7, "p3")
	if err := tb.Activate("txB"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Renew("txB"); err != nil {
		t.Fatal(err)
	}
	return tb
}

func mustGrant(t *testing.T, tb *Table, txid string, token uint64, players ...string) []Lease {
	t.Helper()
	ls, err := tb.Grant(txid, players, token, time.Minute)
	if err != nil {
		t.Fatalf("Grant(%q, %q, %d): %v", txid, players, token, err)
	}
	checkIndexes(t, tb)
	return ls
}

// unchanged runs op and fails if it changed the table.
func unchanged(t *testing.T, tb *Table, what string, op func()) {
	t.Helper()
	before, beforeMax, beforeActive := tb.Snapshot(), tb.MaxToken(), tb.ActiveMatches()
	op()
	if got := tb.Snapshot(); !reflect.DeepEqual(got, before) {
		t.Errorf("%s changed the table:\nbefore %+v\nafter  %+v", what, before, got)
	}
	if tb.MaxToken() != beforeMax || !reflect.DeepEqual(tb.ActiveMatches(), beforeActive) {
		t.Errorf("%s changed MaxToken or ActiveMatches", what)
	}
	checkIndexes(t, tb)
}

// fataler is the part of testing.TB and *rapid.T that checkIndexes needs.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkIndexes checks that the player and txid indexes describe the same leases.
func checkIndexes(t fataler, tb *Table) {
	t.Helper()
	n := 0
	for e := range tb.byTxn.All() {
		txid := e.txid
		if tb.byTxn.Get(txid) != e || len(e.players) == 0 || !slices.IsSorted(e.players) || e.token == 0 || e.token > tb.maxToken {
			t.Fatalf("bad txn entry %q: %+v (max token %d)", txid, e, tb.maxToken)
		}
		for _, p := range e.players {
			if tb.byPlayer.Get(p) != e {
				t.Fatalf("player %q of txid %q indexed to %+v", p, txid, tb.byPlayer.Get(p))
			}
		}
		n += len(e.players)
	}
	if n != tb.byPlayer.Len() || n != tb.Len() {
		t.Fatalf("txn index holds %d players, player index %d", n, tb.byPlayer.Len())
	}
}

func TestGrantErrorsChangeNothing(t *testing.T) {
	for _, c := range []struct {
		name    string
		txid    string
		players []string
		token   uint64
		ttl     time.Duration
		want    error
		holders map[string]string
	}{
		{"empty txid", "", []string{"q"}, 8, time.Second, ErrInvalid, nil},
		{"nil players", "txC", nil, 8, time.Second, ErrInvalid, nil},
		{"no players", "txC", []string{}, 8, time.Second, ErrInvalid, nil},
		{"empty player", "txC", []string{"q", ""}, 8, time.Second, ErrInvalid, nil},
		{"duplicate player", "txC", []string{"q", "r", "q"}, 8, time.Second, ErrInvalid, nil},
		{"duplicate busy player", "txC", []string{"p1", "p1"}, 8, time.Second, ErrInvalid, nil},
		{"zero ttl", "txC", []string{"q"}, 8, 0, ErrInvalid, nil},
		{"negative ttl", "txC", []string{"q"}, 8, -time.Second, ErrInvalid, nil},
		{"txid holds leases", "txA", []string{"q"}, 8, time.Second, ErrInvalid, nil},
		{"token equal to max", "txC", []string{"q"}, 7, time.Second, ErrTokenNotIncreasing, nil},
		{"token below max", "txC", []string{"q"}, 6, time.Second, ErrTokenNotIncreasing, nil},
		{"token zero", "txC", []string{"q"}, 0, time.Second, ErrTokenNotIncreasing, nil},
		{"stale token and busy", "txC", []string{"p1"}, 7, time.Second, ErrTokenNotIncreasing, nil},
		{"one busy", "txC", []string{"q", "p2"}, 8, time.Second, ErrLeased, map[string]string{"p2": "txA"}},
		{"busy by two holders", "txC", []string{"p3", "q", "p1", "r"}, 8, time.Second, ErrLeased,
			map[string]string{"p1": "txA", "p3": "txB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := fixture(t)
			unchanged(t, tb, "Grant", func() {
				ls, err := tb.Grant(c.txid, c.players, c.token, c.ttl)
				if !errors.Is(err, c.want) || ls != nil {
					t.Fatalf("Grant = %+v, %v; want %v", ls, err, c.want)
				}
				var le *LeasedError
				if errors.As(err, &le) != (c.holders != nil) || (le != nil && !maps.Equal(le.Holders, c.holders)) {
					t.Fatalf("Grant error %v: want holders %v", err, c.holders)
				}
			})
		})
	}
}

func TestGrant(t *testing.T) {
	tb := fixture(t)
	ls := mustGrant(t, tb, "txC", 9, "z", "q", "m")
	want := []Lease{
		{Player: "m", TxID: "txC", Token: 9, State: Reserved, TTL: time.Minute},
		{Player: "q", TxID: "txC", Token: 9, State: Reserved, TTL: time.Minute},
		{Player: "z", TxID: "txC", Token: 9, State: Reserved, TTL: time.Minute},
	}
	if !reflect.DeepEqual(ls, want) || !reflect.DeepEqual(tb.TxnLeases("txC"), want) {
		t.Fatalf("Grant = %+v\nTxnLeases = %+v\nwant %+v", ls, tb.TxnLeases("txC"), want)
	}
	if l, ok := tb.Get("q"); !ok || l != want[1] {
		t.Fatalf("Get(q) = %+v, %v", l, ok)
	}
	if tb.Len() != 6 || tb.MaxToken() != 9 {
		t.Fatalf("Len %d MaxToken %d, want 6 and 9", tb.Len(), tb.MaxToken())
	}
	// The caller's slice is not retained.
	players := []string{"y", "x"}
	mustGrant(t, tb, "txD", 10, players...)
	players[0] = "p1"
	if l, _ := tb.Get("y"); l.TxID != "txD" {
		t.Fatal("table retained the caller's player slice")
	}
}

func TestStateTransitionErrorsChangeNothing(t *testing.T) {
	tb := fixture(t)
	for _, c := range []struct {
		what string
		op   func() error
		want error
	}{
		{"Activate unknown", func() error { return tb.Activate("nope") }, ErrNotFound},
		{"Activate ACTIVE", func() error { return tb.Activate("txB") }, ErrWrongState},
		{"Renew unknown", func() error { _, err := tb.Renew("nope"); return err }, ErrNotFound},
		{"Renew RESERVED", func() error { _, err := tb.Renew("txA"); return err }, ErrWrongState},
		{"Release unknown", func() error { _, err := tb.Release("nope"); return err }, ErrNotFound},
		{"Expire unknown", func() error { _, _, err := tb.Expire("nope", 0); return err }, ErrNotFound},
		{"Expire RESERVED", func() error { _, _, err := tb.Expire("txA", 0); return err }, ErrWrongState},
		{"Expire stale seq", func() error {
			ls, ok, err := tb.Expire("txB", 0)
			if ls != nil || ok {
				return fmt.Errorf("stale Expire returned %+v, %v", ls, ok)
			}
			return err
		}, nil},
	} {
		unchanged(t, tb, c.what, func() {
			if err := c.op(); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Errorf("%s = %v, want %v", c.what, err, c.want)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	tb := fixture(t)
	if err := tb.Activate("txA"); err != nil {
		t.Fatal(err)
	}
	if l, _ := tb.Get("p1"); l.State != Active || l.RenewSeq != 0 {
		t.Fatalf("after Activate: %+v", l)
	}
	for want := uint64(1); want <= 3; want++ {
		if seq, err := tb.Renew("txA"); err != nil || seq != want {
			t.Fatalf("Renew = %d, %v; want %d", seq, err, want)
		}
	}
	// A measurement from before the last renew is stale; the current one expires.
	if _, ok, err := tb.Expire("txA", 2); ok || err != nil {
		t.Fatalf("stale Expire = %v, %v", ok, err)
	}
	ls, ok, err := tb.Expire("txA", 3)
	if err != nil || !ok || len(ls) != 2 || ls[0].Player != "p1" || ls[1].Player != "p2" || ls[0].RenewSeq != 3 {
		t.Fatalf("Expire = %+v, %v, %v", ls, ok, err)
	}
	if _, held := tb.Get("p1"); held || tb.TxnLeases("txA") != nil {
		t.Fatal("expired lease still present")
	}
	// Release works in either state and returns what it removed, sorted.
	mustGrant(t, tb, "txC", 8, "c2", "c1")
	if ls, err := tb.Release("txC"); err != nil || len(ls) != 2 || ls[0].Player != "c1" || ls[0].State != Reserved {
		t.Fatalf("Release RESERVED = %+v, %v", ls, err)
	}
	if ls, err := tb.Release("txB"); err != nil || len(ls) != 1 || ls[0].State != Active {
		t.Fatalf("Release ACTIVE = %+v, %v", ls, err)
	}
	if tb.Len() != 0 || tb.MaxToken() != 8 {
		t.Fatalf("Len %d MaxToken %d after releasing everything", tb.Len(), tb.MaxToken())
	}
	// Tokens never go back, even on an empty table.
	if _, err := tb.Grant("txD", []string{"p1"}, 8, time.Second); !errors.Is(err, ErrTokenNotIncreasing) {
		t.Fatalf("reused token: %v", err)
	}
	checkIndexes(t, tb)
}

func TestActiveMatches(t *testing.T) {
	tb := NewTable()
	for i, txid := range []string{"m3", "m1", "r", "m2"} {
		mustGrant(t, tb, txid, uint64(i+1), txid+"-b", txid+"-a")
		if txid != "r" {
			if err := tb.Activate(txid); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _ = tb.Renew("m2")
	got := tb.ActiveMatches()
	want := []Match{
		{TxID: "m1", TTL: time.Minute, Players: []string{"m1-a", "m1-b"}},
		{TxID: "m2", TTL: time.Minute, RenewSeq: 1, Players: []string{"m2-a", "m2-b"}},
		{TxID: "m3", TTL: time.Minute, Players: []string{"m3-a", "m3-b"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ActiveMatches = %+v, want %+v", got, want)
	}
	got[0].Players[0] = "mutated"
	if _, ok := tb.Get("m1-a"); !ok || tb.ActiveMatches()[0].Players[0] != "m1-a" {
		t.Fatal("ActiveMatches shares its Players slice with the table")
	}
}

func TestSnapshotSortedAndRestores(t *testing.T) {
	tb := fixture(t)
	mustGrant(t, tb, "txC", 20, "a", "zz")
	snap := tb.Snapshot()
	if !slices.IsSortedFunc(snap, func(a, b Lease) int { return strings.Compare(a.Player, b.Player) }) || len(snap) != 5 {
		t.Fatalf("Snapshot not sorted or incomplete: %+v", snap)
	}
	slices.Reverse(snap) // any order restores
	rt, err := RestoreTable(snap, 25)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, rt)
	if !reflect.DeepEqual(rt.Snapshot(), tb.Snapshot()) || !reflect.DeepEqual(rt.ActiveMatches(), tb.ActiveMatches()) || rt.MaxToken() != 25 {
		t.Fatal("restored table differs")
	}
	if empty, err := RestoreTable(nil, 3); err != nil || empty.Len() != 0 || empty.MaxToken() != 3 {
		t.Fatalf("empty restore: %v", err)
	}
}

func TestRestoreTableRejects(t *testing.T) {
	ok := Lease{Player: "p", TxID: "t", Token: 3, State: Active, TTL: time.Second, RenewSeq: 2}
	with := func(f func(*Lease)) Lease { l := ok; f(&l); return l }
	other := func(f func(*Lease)) Lease { l := with(func(l *Lease) { l.Player = "q" }); f(&l); return l }
	for name, leases := range map[string][]Lease{
		"empty player":       {with(func(l *Lease) { l.Player = "" })},
		"empty txid":         {with(func(l *Lease) { l.TxID = "" })},
		"zero state":         {with(func(l *Lease) { l.State = 0 })},
		"unknown state":      {with(func(l *Lease) { l.State = 9 })},
		"zero ttl":           {with(func(l *Lease) { l.TTL = 0 })},
		"zero token":         {with(func(l *Lease) { l.Token = 0 })},
		"token above max":    {with(func(l *Lease) { l.Token = 11 })},
		"reserved renewed":   {with(func(l *Lease) { l.State = Reserved })},
		"duplicate player":   {ok, with(func(l *Lease) { l.TxID = "u"; l.Token = 4 })},
		"txn token differs":  {ok, other(func(l *Lease) { l.Token = 4 })},
		"txn state differs":  {ok, other(func(l *Lease) { l.State = Reserved; l.RenewSeq = 0 })},
		"txn ttl differs":    {ok, other(func(l *Lease) { l.TTL = 2 * time.Second })},
		"txn seq differs":    {ok, other(func(l *Lease) { l.RenewSeq = 1 })},
		"txids share token":  {ok, other(func(l *Lease) { l.TxID = "u" })},
		"identical repeated": {ok, ok},
	} {
		if _, err := RestoreTable(leases, 10); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: RestoreTable = %v, want ErrInvalid", name, err)
		}
	}
}

func TestLeasedErrorAndState(t *testing.T) {
	err := error(&LeasedError{Holders: map[string]string{"zed": "t2", "amy": "t1", "bob": "t1"}})
	const want = `lease: players leased: "amy" held by "t1", "bob" held by "t1", "zed" held by "t2"`
	if err.Error() != want {
		t.Fatalf("Error() = %s\nwant      %s", err, want)
	}
	wrapped := fmt.Errorf("begin tx9: %w", err)
	var le *LeasedError
	if !errors.Is(wrapped, ErrLeased) || !errors.As(wrapped, &le) || errors.Is(wrapped, ErrNotFound) {
		t.Fatal("wrapped LeasedError does not classify")
	}
	if Reserved.String() != "RESERVED" || Active.String() != "ACTIVE" || State(0).String() != "State(0)" {
		t.Fatal("State.String")
	}
}
