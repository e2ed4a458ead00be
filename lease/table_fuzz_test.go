package lease

import (
	"cmp"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fuzz encoding of a snapshot: byte 0 is maxToken, then 4 bytes per lease:
// player and txid, token, state and ttl, renew seq. Small alphabets make collisions
// (the interesting inputs) likely.
var (
	fuzzPlayers = []string{"", "a", "b", "c", "d", "e"}
	fuzzTxids   = []string{"", "t1", "t2", "t3", "t4"}
	fuzzTTLs    = []time.Duration{0, time.Second, 2 * time.Second}
)

func decodeSnapshot(data []byte) ([]Lease, uint64) {
	if len(data) == 0 {
		return nil, 0
	}
	maxToken := uint64(data[0] % 16)
	var ls []Lease
	for b := data[1:]; len(b) >= 4; b = b[4:] {
		ls = append(ls, Lease{
			Player:   fuzzPlayers[int(b[0])%len(fuzzPlayers)],
			TxID:     fuzzTxids[int(b[0])/len(fuzzPlayers)%len(fuzzTxids)],
			Token:    uint64(b[1] % 16),
			State:    State(b[2] % 3),
			TTL:      fuzzTTLs[int(b[2])/3%len(fuzzTTLs)],
			RenewSeq: uint64(b[3] % 4),
		})
	}
	return ls, maxToken
}

func encodeSnapshot(ls []Lease, maxToken uint64) []byte {
	out := []byte{byte(maxToken)}
	for _, l := range ls {
		p, tx, ttl := slices.Index(fuzzPlayers, l.Player), slices.Index(fuzzTxids, l.TxID), slices.Index(fuzzTTLs, l.TTL)
		out = append(out, byte(tx*len(fuzzPlayers)+p), byte(l.Token), byte(ttl*3+int(l.State)), byte(l.RenewSeq))
	}
	return out
}

// replay builds a table through the public operations only: grants in token order,
// then activations and renews. RestoreTable claims to accept only reachable tables, so
// every table it accepts must replay to the same snapshot.
func replay(ls []Lease) (*Table, error) {
	byTxn := map[string][]Lease{}
	for _, l := range ls {
		byTxn[l.TxID] = append(byTxn[l.TxID], l)
	}
	txids := slices.SortedFunc(maps.Keys(byTxn), func(a, b string) int {
		return cmp.Compare(byTxn[a][0].Token, byTxn[b][0].Token)
	})
	tb := NewTable()
	for _, txid := range txids {
		first := byTxn[txid][0]
		var players []string
		for _, l := range byTxn[txid] {
			players = append(players, l.Player)
		}
		if _, err := tb.Grant(txid, players, first.Token, first.TTL); err != nil {
			return nil, err
		}
		if first.State == Active {
			if err := tb.Activate(txid); err != nil {
				return nil, err
			}
		}
		for range first.RenewSeq {
			if _, err := tb.Renew(txid); err != nil {
				return nil, err
			}
		}
	}
	return tb, nil
}

func FuzzRestoreTable(f *testing.F) {
	tb := NewTable()
	_, _ = tb.Grant("t1", []string{"a", "c"}, 2, time.Second)
	_, _ = tb.Grant("t2", []string{"b"}, 5, 2*time.Second)
	_ = tb.Activate("t2")
	_, _ = tb.Renew("t2")
	_, _ = tb.Grant("t3", []string{"e", "d"}, 9, time.Second)
	_ = tb.Activate("t3")
	f.Add(encodeSnapshot(tb.Snapshot(), 12))
	f.Add(encodeSnapshot(tb.Snapshot(), 9))
	f.Add(encodeSnapshot(tb.Snapshot(), 8)) // token above max
	f.Add(encodeSnapshot(nil, 0))
	f.Add([]byte{})
	dup := append(tb.Snapshot(), Lease{Player: "a", TxID: "t4", Token: 10, State: Reserved, TTL: time.Second})
	f.Add(encodeSnapshot(dup, 12))
	bad := tb.Snapshot()
	bad[0].RenewSeq = 3 // txn fields disagree
	f.Add(encodeSnapshot(bad, 12))

	f.Fuzz(func(t *testing.T, data []byte) {
		in, maxToken := decodeSnapshot(data)
		rt, err := RestoreTable(in, maxToken)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || rt != nil {
				t.Fatalf("RestoreTable = %v, %v; want nil, ErrInvalid", rt, err)
			}
			return
		}
		checkIndexes(t, rt)
		want := slices.SortedFunc(slices.Values(in), func(a, b Lease) int { return strings.Compare(a.Player, b.Player) })
		snap := rt.Snapshot()
		if !reflect.DeepEqual(snap, want) && !(len(snap) == 0 && len(want) == 0) {
			t.Fatalf("Snapshot %+v, restored from %+v", snap, want)
		}
		if rt.MaxToken() != maxToken {
			t.Fatalf("MaxToken %d, restored with %d", rt.MaxToken(), maxToken)
		}
		again, err := RestoreTable(snap, rt.MaxToken())
		if err != nil || !reflect.DeepEqual(again.Snapshot(), snap) || !reflect.DeepEqual(again.ActiveMatches(), rt.ActiveMatches()) {
			t.Fatalf("round trip: %v", err)
		}
		rp, err := replay(in)
		if err != nil {
			t.Fatalf("RestoreTable accepted a table no operation sequence reaches: %v\n%+v", err, in)
		}
		if !reflect.DeepEqual(rp.Snapshot(), snap) || !reflect.DeepEqual(rp.ActiveMatches(), rt.ActiveMatches()) {
			t.Fatalf("replayed table differs:\n%+v\n%+v", rp.Snapshot(), snap)
		}
		// The restored table keeps fencing: no grant at or below MaxToken.
		if _, err := rt.Grant("fresh", []string{"zz"}, maxToken, time.Second); !errors.Is(err, ErrTokenNotIncreasing) {
			t.Fatalf("Grant at MaxToken after restore: %v", err)
		}
		if _, err := rt.Grant("fresh", []string{"zz"}, maxToken+1, time.Second); err != nil {
			t.Fatalf("Grant above MaxToken after restore: %v", err)
		}
	})
}
