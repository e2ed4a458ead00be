package lease

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// model is the reference the Table is checked against: plain maps, written for
// obviousness rather than speed, sharing no code with Table.
type model struct {
	txns      map[string]*modelTxn
	holder    map[string]string // player -> txid
	maxToken  uint64
	lastToken map[string]uint64 // player -> last token ever granted (for I4)
}

type modelTxn struct {
	players []string
	token   uint64
	state   State
	ttl     time.Duration
	seq     uint64
}

var (
	modelPlayers = []string{"", "a", "b", "c", "d", "e"}
	modelTxids   = []string{"", "t1", "t2", "t3", "t4"}
)

// kind classifies an error the way the model predicts it.
func kind(err error) string {
	for _, k := range []struct {
		target error
		name   string
	}{{ErrInvalid, "invalid"}, {ErrTokenNotIncreasing, "token"}, {ErrLeased, "leased"}, {ErrNotFound, "notfound"}, {ErrWrongState, "wrongstate"}} {
		if errors.Is(err, k.target) {
			return k.name
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "ok"
}

// grant predicts Grant: the error kind, and on success applies it to the model.
func (m *model) grant(txid string, players []string, token uint64, ttl time.Duration) (string, map[string]string) {
	seen := map[string]bool{}
	for _, p := range players {
		if p == "" || seen[p] {
			return "invalid", nil
		}
		seen[p] = true
	}
	if txid == "" || len(players) == 0 || ttl <= 0 || m.txns[txid] != nil {
		return "invalid", nil
	}
	if token <= m.maxToken {
		return "token", nil
	}
	busy := map[string]string{}
	for _, p := range players {
		if h, ok := m.holder[p]; ok {
			busy[p] = h
		}
	}
	if len(busy) > 0 {
		return "leased", busy
	}
	sorted := slices.Sorted(slices.Values(players))
	m.txns[txid] = &modelTxn{players: sorted, token: token, state: Reserved, ttl: ttl}
	for _, p := range players {
		m.holder[p] = txid
	}
	m.maxToken = token
	return "ok", nil
}

func (m *model) remove(txid string) []Lease {
	ls := m.leases(txid)
	for _, p := range m.txns[txid].players {
		delete(m.holder, p)
	}
	delete(m.txns, txid)
	return ls
}

func (m *model) leases(txid string) []Lease {
	x := m.txns[txid]
	if x == nil {
		return nil
	}
	var ls []Lease
	for _, p := range x.players {
		ls = append(ls, Lease{Player: p, TxID: txid, Token: x.token, State: x.state, TTL: x.ttl, RenewSeq: x.seq})
	}
	return ls
}

func (m *model) snapshot() []Lease {
	out := []Lease{}
	for _, p := range slices.Sorted(maps.Keys(m.holder)) {
		x := m.txns[m.holder[p]]
		out = append(out, Lease{Player: p, TxID: m.holder[p], Token: x.token, State: x.state, TTL: x.ttl, RenewSeq: x.seq})
	}
	return out
}

func (m *model) active() []Match {
	var out []Match
	for _, txid := range slices.Sorted(maps.Keys(m.txns)) {
		if x := m.txns[txid]; x.state == Active {
			out = append(out, Match{TxID: txid, TTL: x.ttl, RenewSeq: x.seq, Players: slices.Clone(x.players)})
		}
	}
	return out
}

// tableModel drives random operation sequences against a Table and the model.
func tableModel(t *rapid.T) {
	tb := NewTable()
	m := &model{txns: map[string]*modelTxn{}, holder: map[string]string{}, lastToken: map[string]uint64{}}
	// Draws lean towards valid calls, so that long runs of real grants, renews and
	// expiries happen; the invalid ones still come up every few steps.
	txid := rapid.Custom(func(t *rapid.T) string {
		if rapid.IntRange(0, 19).Draw(t, "emptyTxid") == 0 {
			return ""
		}
		return rapid.SampledFrom(modelTxids[1:]).Draw(t, "txid")
	})
	players := rapid.Custom(func(t *rapid.T) []string {
		if rapid.IntRange(0, 9).Draw(t, "oddPlayers") == 0 {
			return rapid.SliceOfN(rapid.SampledFrom(modelPlayers), 0, 4).Draw(t, "players")
		}
		return rapid.SliceOfNDistinct(rapid.SampledFrom(modelPlayers[1:]), 1, 3, rapid.ID[string]).Draw(t, "players")
	})
	// existing draws, three times in four, a txid that holds leases, so that activate,
	// renew, release and expire mostly act on something.
	existing := func(t *rapid.T) string {
		if len(m.txns) > 0 && rapid.IntRange(0, 3).Draw(t, "pickExisting") != 0 {
			return rapid.SampledFrom(slices.Sorted(maps.Keys(m.txns))).Draw(t, "existingTxid")
		}
		return txid.Draw(t, "txid")
	}
	expectKind := func(op string, err error, want string) {
		if got := kind(err); got != want {
			t.Fatalf("%s: got %s (%v), model says %s", op, got, err, want)
		}
	}
	t.Repeat(map[string]func(*rapid.T){
		"grant": func(t *rapid.T) {
			id := txid.Draw(t, "txid")
			players := players.Draw(t, "players")
			token := m.maxToken + 1 + rapid.Uint64Range(0, 3).Draw(t, "tokenStep")
			if rapid.IntRange(0, 9).Draw(t, "staleToken") == 0 {
				token = rapid.Uint64Range(0, m.maxToken).Draw(t, "token")
			}
			ttl := rapid.SampledFrom([]time.Duration{-time.Second, 0, time.Second, time.Minute, time.Minute, time.Minute}).Draw(t, "ttl")
			ls, err := tb.Grant(id, players, token, ttl)
			want, busy := m.grant(id, players, token, ttl)
			expectKind("Grant", err, want)
			var le *LeasedError
			if errors.As(err, &le) && !maps.Equal(le.Holders, busy) {
				t.Fatalf("LeasedError holders %v, model %v", le.Holders, busy)
			}
			if want == "ok" {
				if !reflect.DeepEqual(ls, m.leases(id)) {
					t.Fatalf("Grant returned %+v, model %+v", ls, m.leases(id))
				}
				for _, p := range players {
					if token <= m.lastToken[p] {
						t.Fatalf("I4: player %q granted token %d after %d", p, token, m.lastToken[p])
					}
					m.lastToken[p] = token
				}
			}
		},
		"activate": func(t *rapid.T) {
			id := existing(t)
			want := "ok"
			if x := m.txns[id]; x == nil {
				want = "notfound"
			} else if x.state != Reserved {
				want = "wrongstate"
			} else {
				x.state = Active
			}
			expectKind("Activate", tb.Activate(id), want)
		},
		"renew": func(t *rapid.T) {
			id := existing(t)
			seq, err := tb.Renew(id)
			want := "ok"
			if x := m.txns[id]; x == nil {
				want = "notfound"
			} else if x.state != Active {
				want = "wrongstate"
			} else if x.seq++; seq != x.seq {
				t.Fatalf("Renew seq %d, model %d", seq, x.seq)
			}
			expectKind("Renew", err, want)
		},
		"release": func(t *rapid.T) {
			id := existing(t)
			ls, err := tb.Release(id)
			if m.txns[id] == nil {
				expectKind("Release", err, "notfound")
				return
			}
			expectKind("Release", err, "ok")
			if want := m.remove(id); !reflect.DeepEqual(ls, want) {
				t.Fatalf("Release returned %+v, model %+v", ls, want)
			}
		},
		"expire": func(t *rapid.T) {
			id := existing(t)
			var seq uint64
			if x := m.txns[id]; x != nil {
				seq = x.seq
			}
			// Mostly the current seq (a due match), else one either side (stale).
			switch rapid.IntRange(0, 3).Draw(t, "seqOff") {
			case 0:
				seq++
			case 1:
				seq = max(seq, 1) - 1
			}
			ls, ok, err := tb.Expire(id, seq)
			x := m.txns[id]
			switch {
			case x == nil:
				expectKind("Expire", err, "notfound")
			case x.state != Active:
				expectKind("Expire", err, "wrongstate")
			case x.seq != seq:
				expectKind("Expire", err, "ok")
				if ok || ls != nil {
					t.Fatalf("stale Expire(%q, %d) removed %+v (seq %d)", id, seq, ls, x.seq)
				}
			default:
				expectKind("Expire", err, "ok")
				if want := m.remove(id); !ok || !reflect.DeepEqual(ls, want) {
					t.Fatalf("Expire returned %+v, %v; model %+v", ls, ok, want)
				}
			}
		},
		"": func(t *rapid.T) { checkAgainstModel(t, tb, m) },
	})
}

// checkAgainstModel compares every observation of the table with the model, checks
// the structural invariants, and checks that Snapshot/RestoreTable round-trips.
func checkAgainstModel(t *rapid.T, tb *Table, m *model) {
	snap := tb.Snapshot()
	if want := m.snapshot(); !reflect.DeepEqual(snap, want) {
		t.Fatalf("Snapshot %+v\nmodel    %+v", snap, want)
	}
	if !reflect.DeepEqual(tb.ActiveMatches(), m.active()) {
		t.Fatalf("ActiveMatches %+v, model %+v", tb.ActiveMatches(), m.active())
	}
	if tb.MaxToken() != m.maxToken || tb.Len() != len(m.holder) {
		t.Fatalf("MaxToken %d Len %d, model %d %d", tb.MaxToken(), tb.Len(), m.maxToken, len(m.holder))
	}
	for _, p := range modelPlayers {
		l, ok := tb.Get(p)
		if h, held := m.holder[p]; ok != held || (held && (l.TxID != h || l.Player != p)) {
			t.Fatalf("Get(%q) = %+v, %v; model holder %q", p, l, ok, h)
		}
	}
	for _, id := range modelTxids {
		if !reflect.DeepEqual(tb.TxnLeases(id), m.leases(id)) {
			t.Fatalf("TxnLeases(%q) = %+v, model %+v", id, tb.TxnLeases(id), m.leases(id))
		}
	}
	checkIndexes(t, tb)
	rt, err := RestoreTable(snap, tb.MaxToken())
	if err != nil {
		t.Fatalf("RestoreTable of a reachable table: %v", err)
	}
	if !reflect.DeepEqual(rt.Snapshot(), snap) || !reflect.DeepEqual(rt.ActiveMatches(), tb.ActiveMatches()) || rt.MaxToken() != tb.MaxToken() {
		t.Fatal("RestoreTable(Snapshot) differs from the table")
	}
	checkIndexes(t, rt)
}

func TestTableModel(t *testing.T) { rapid.Check(t, tableModel) }

// FuzzTableModel runs the model test under the native fuzzer.
func FuzzTableModel(f *testing.F) { f.Fuzz(rapid.MakeFuzz(tableModel)) }
