package twophase

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// journalFactory opens a fresh journal; reopen, when non-nil, closes j and opens the
// same storage again (nil for journals without persistence across Close).
type journalFactory struct {
	name   string
	open   func(t testing.TB) Journal
	reopen func(t testing.TB, j Journal) Journal
}

func journalFactories() []journalFactory {
	return []journalFactory{
		{name: "mem", open: func(testing.TB) Journal { return NewMemJournal() }},
		{
			name: "bolt",
			open: func(t testing.TB) Journal {
				j, err := OpenBoltJournal(filepath.Join(t.TempDir(), "journal.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = j.Close() })
				return j
			},
			reopen: func(t testing.TB, j Journal) Journal {
				path := j.(*BoltJournal).Path()
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				j2, err := OpenBoltJournal(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = j2.Close() })
				return j2
			},
		},
	}
}

func jrEntry(txid string, st JournalState) JournalEntry {
	return JournalEntry{
		TxID:  txid,
		State: st,
		Players: []*smv1.ShardPlayer{
			{PlayerId: "alice", FencingToken: 7},
			{PlayerId: "bob", FencingToken: 1 << 40},
		},
		Rejections:   []*smv1.PlayerRejection{{PlayerId: "bob", Code: "BUSY", Message: "in a dungeon"}},
		Term:         3,
		RecordedAt:   time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC),
		RecordedMono: 90 * time.Second,
	}
}

func jrEqual(t *testing.T, got, want JournalEntry) {
	t.Helper()
	if got.TxID != want.TxID || got.State != want.State || got.Term != want.Term ||
		!got.RecordedAt.Equal(want.RecordedAt) || got.RecordedMono != want.RecordedMono {
		t.Fatalf("entry = %+v, want %+v", got, want)
	}
	if len(got.Players) != len(want.Players) || len(got.Rejections) != len(want.Rejections) {
		t.Fatalf("entry lists = %v %v, want %v %v", got.Players, got.Rejections, want.Players, want.Rejections)
	}
	for i := range got.Players {
		if !proto.Equal(got.Players[i], want.Players[i]) {
			t.Fatalf("player %d = %v, want %v", i, got.Players[i], want.Players[i])
		}
	}
	for i := range got.Rejections {
		if !proto.Equal(got.Rejections[i], want.Rejections[i]) {
			t.Fatalf("rejection %d = %v, want %v", i, got.Rejections[i], want.Rejections[i])
		}
	}
}

// TestJournalConformance runs the Journal contract against every implementation.
func TestJournalConformance(t *testing.T) {
	for _, f := range journalFactories() {
		t.Run(f.name, func(t *testing.T) {
			t.Run("GetMissing", func(t *testing.T) {
				j := f.open(t)
				if _, ok, err := j.Get("nope"); ok || err != nil {
					t.Fatalf("Get missing = %v, %v", ok, err)
				}
			})
			t.Run("RoundTripAndOverwrite", func(t *testing.T) {
				j := f.open(t)
				want := jrEntry("tx1", JournalPrepared)
				if err := j.Put(want, nil); err != nil {
					t.Fatal(err)
				}
				got, ok, err := j.Get("tx1")
				if !ok || err != nil {
					t.Fatalf("Get = %v, %v", ok, err)
				}
				jrEqual(t, got, want)
				want = JournalEntry{TxID: "tx1", State: JournalCommitted} // zero time, no lists
				if err := j.Put(want, nil); err != nil {
					t.Fatal(err)
				}
				got, _, _ = j.Get("tx1")
				jrEqual(t, got, want)
				if !got.RecordedAt.IsZero() {
					t.Fatalf("zero RecordedAt came back as %v", got.RecordedAt)
				}
			})
			t.Run("RejectsInvalid", func(t *testing.T) {
				j := f.open(t)
				if err := j.Put(JournalEntry{TxID: "x"}, nil); err == nil {
					t.Fatal("Put with zero state accepted")
				}
				if err := j.Put(JournalEntry{State: JournalAborted}, nil); err == nil {
					t.Fatal("Put with empty txid accepted")
				}
			})
			t.Run("NoAliasing", func(t *testing.T) {
				j := f.open(t)
				e := jrEntry("tx1", JournalPrepared)
				if err := j.Put(e, nil); err != nil {
					t.Fatal(err)
				}
				e.Players[0].PlayerId = "mallory"
				got, _, _ := j.Get("tx1")
				if got.Players[0].PlayerId != "alice" {
					t.Fatal("journal kept the caller's player")
				}
				got.Players[0].PlayerId = "mallory"
				again, _, _ := j.Get("tx1")
				if again.Players[0].PlayerId != "alice" {
					t.Fatal("journal returned its own player")
				}
			})
			t.Run("ListSortedAndDelete", func(t *testing.T) {
				j := f.open(t)
				for _, id := range []string{"c", "a", "b", "aa"} {
					if err := j.Put(JournalEntry{TxID: id, State: JournalAborted}, nil); err != nil {
						t.Fatal(err)
					}
				}
				if err := j.Delete("b", "missing"); err != nil {
					t.Fatal(err)
				}
				if err := j.Delete(); err != nil {
					t.Fatal(err)
				}
				l, err := j.List()
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, e := range l {
					ids = append(ids, e.TxID)
				}
				if fmt.Sprint(ids) != "[a aa c]" {
					t.Fatalf("List = %v", ids)
				}
			})
			t.Run("TokensOnlyRise", func(t *testing.T) {
				j := f.open(t)
				if err := j.Put(jrEntry("tx1", JournalPrepared), map[string]uint64{"alice": 7, "bob": 9}); err != nil {
					t.Fatal(err)
				}
				if err := j.RaiseTokens(map[string]uint64{"alice": 3, "bob": 12, "carol": 1, "": 5}); err != nil {
					t.Fatal(err)
				}
				if err := j.RaiseTokens(nil); err != nil {
					t.Fatal(err)
				}
				got, err := j.HighestTokens()
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != "map[alice:7 bob:12 carol:1]" {
					t.Fatalf("HighestTokens = %v", got)
				}
				got["alice"] = 1000
				again, _ := j.HighestTokens()
				if again["alice"] != 7 {
					t.Fatal("HighestTokens returned the journal's own map")
				}
			})
			t.Run("Concurrent", func(t *testing.T) {
				j := f.open(t)
				var wg sync.WaitGroup
				for g := range 8 {
					wg.Go(func() {
						for i := range 20 {
							id := fmt.Sprintf("g%d-%02d", g, i)
							if err := j.Put(JournalEntry{TxID: id, State: JournalPrepared}, map[string]uint64{"p": uint64(g*100 + i)}); err != nil {
								t.Error(err)
								return
							}
							if _, ok, err := j.Get(id); !ok || err != nil {
								t.Errorf("Get %s = %v, %v", id, ok, err)
								return
							}
						}
					})
				}
				wg.Wait()
				l, _ := j.List()
				tok, _ := j.HighestTokens()
				if len(l) != 160 || tok["p"] != 719 {
					t.Fatalf("after concurrent puts: %d records, token %d", len(l), tok["p"])
				}
			})
			t.Run("Closed", func(t *testing.T) {
				j := f.open(t)
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				if err := j.Close(); err != nil {
					t.Fatalf("second Close = %v", err)
				}
				if _, _, err := j.Get("x"); !errors.Is(err, ErrJournalClosed) {
					t.Fatalf("Get after Close = %v", err)
				}
				if err := j.Put(JournalEntry{TxID: "x", State: JournalAborted}, nil); !errors.Is(err, ErrJournalClosed) {
					t.Fatalf("Put after Close = %v", err)
				}
				if _, err := j.List(); !errors.Is(err, ErrJournalClosed) {
					t.Fatalf("List after Close = %v", err)
				}
			})
			if f.reopen == nil {
				return
			}
			t.Run("Reopen", func(t *testing.T) {
				j := f.open(t)
				want := jrEntry("tx1", JournalPrepared)
				if err := j.Put(want, map[string]uint64{"alice": 7}); err != nil {
					t.Fatal(err)
				}
				if err := j.Put(JournalEntry{TxID: "tx0", State: JournalAborted}, nil); err != nil {
					t.Fatal(err)
				}
				j = f.reopen(t, j)
				got, ok, err := j.Get("tx1")
				if !ok || err != nil {
					t.Fatalf("Get after reopen = %v, %v", ok, err)
				}
				jrEqual(t, got, want)
				l, _ := j.List()
				tok, _ := j.HighestTokens()
				if len(l) != 2 || tok["alice"] != 7 {
					t.Fatalf("after reopen: %d records, tokens %v", len(l), tok)
				}
			})
		})
	}
}

func TestJournalCodecRejectsCorruption(t *testing.T) {
	good := encodeJournalEntry(jrEntry("tx", JournalVotedNo))
	cases := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"state":     append([]byte{journalCodecV1, 0}, good[2:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"hugecount": {journalCodecV1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range cases {
		if _, err := decodeJournalEntry("tx", b); !errors.Is(err, ErrJournalCorrupt) {
			t.Errorf("%s: err = %v, want ErrJournalCorrupt", name, err)
		}
	}
}

// FuzzJournalDecode: the decoder never panics, and what it accepts re-encodes to the
// same bytes.
func FuzzJournalDecode(f *testing.F) {
	f.Add(encodeJournalEntry(jrEntry("tx", JournalPrepared)))
	f.Add(encodeJournalEntry(JournalEntry{TxID: "tx", State: JournalAborted}))
	f.Add([]byte{journalCodecV1, 4, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeJournalEntry("tx", b)
		if err != nil {
			return
		}
		// Re-encoding may choose shorter varints than a hand-made input, so compare
		// by decoding again.
		e2, err := decodeJournalEntry("tx", encodeJournalEntry(e))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		jrEqual(t, e2, e)
	})
}
