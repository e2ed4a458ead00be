package journaltest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Journal is the interface under test.
type Journal = twophase.Journal

// entry is a record with every field set.
func entry(txid string, st twophase.JournalState) twophase.JournalEntry {
	return twophase.JournalEntry{
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

// sameEntry describes how got differs from want, or returns "".
func sameEntry(got, want twophase.JournalEntry) string {
	if got.TxID != want.TxID || got.State != want.State || got.Term != want.Term ||
		!got.RecordedAt.Equal(want.RecordedAt) || got.RecordedMono != want.RecordedMono ||
		len(got.Players) != len(want.Players) || len(got.Rejections) != len(want.Rejections) {
		return fmt.Sprintf("entry = %+v, want %+v", got, want)
	}
	for i := range got.Players {
		if !proto.Equal(got.Players[i], want.Players[i]) {
			return fmt.Sprintf("player %d = %v, want %v", i, got.Players[i], want.Players[i])
		}
	}
	for i := range got.Rejections {
		if !proto.Equal(got.Rejections[i], want.Rejections[i]) {
			return fmt.Sprintf("rejection %d = %v, want %v", i, got.Rejections[i], want.Rejections[i])
		}
	}
	return ""
}

// CheckGetMissing: Get of an unknown txid is (false, nil).
func CheckGetMissing(t *testing.T, h Harness) error {
	if _, ok, err := h.Open(t).Get("nope"); ok || err != nil {
		return fmt.Errorf("Get of a missing txid = %v, %v; want false, nil", ok, err)
	}
	return nil
}

// CheckRoundTripAndOverwrite: every field comes back as written, and a second Put of
// the same txid replaces the record (a zero time stays zero).
func CheckRoundTripAndOverwrite(t *testing.T, h Harness) error {
	j := h.Open(t)
	want := entry("tx1", twophase.JournalPrepared)
	if err := j.Put(want, nil); err != nil {
		return err
	}
	got, ok, err := j.Get("tx1")
	if !ok || err != nil {
		return fmt.Errorf("Get after Put = %v, %v", ok, err)
	}
	if d := sameEntry(got, want); d != "" {
		return errors.New(d)
	}
	want = twophase.JournalEntry{TxID: "tx1", State: twophase.JournalCommitted}
	if err := j.Put(want, nil); err != nil {
		return err
	}
	got, _, _ = j.Get("tx1")
	if d := sameEntry(got, want); d != "" {
		return fmt.Errorf("after overwrite: %s", d)
	}
	if !got.RecordedAt.IsZero() {
		return fmt.Errorf("a zero RecordedAt came back as %v", got.RecordedAt)
	}
	return nil
}

// CheckRejectsInvalid: a record with no state or no txid is refused.
func CheckRejectsInvalid(t *testing.T, h Harness) error {
	j := h.Open(t)
	if err := j.Put(twophase.JournalEntry{TxID: "x"}, nil); err == nil {
		return errors.New("Put with a zero state accepted")
	}
	if err := j.Put(twophase.JournalEntry{State: twophase.JournalAborted}, nil); err == nil {
		return errors.New("Put with an empty txid accepted")
	}
	if _, ok, _ := j.Get("x"); ok {
		return errors.New("a refused Put was recorded")
	}
	return nil
}

// CheckNoAliasing: the journal keeps neither the caller's players nor hands out its own.
func CheckNoAliasing(t *testing.T, h Harness) error {
	j := h.Open(t)
	e := entry("tx1", twophase.JournalPrepared)
	if err := j.Put(e, nil); err != nil {
		return err
	}
	e.Players[0].PlayerId = "mallory"
	got, _, _ := j.Get("tx1")
	if got.Players[0].GetPlayerId() != "alice" {
		return errors.New("the journal kept the caller's player: changing it after Put changed the record")
	}
	got.Players[0].PlayerId = "mallory"
	again, _, _ := j.Get("tx1")
	if again.Players[0].GetPlayerId() != "alice" {
		return errors.New("the journal returned its own player: changing what Get returned changed the record")
	}
	return nil
}

// CheckListSortedAndDelete: List returns every record sorted by txid; Delete of
// several txids, missing ones included, or of none, works.
func CheckListSortedAndDelete(t *testing.T, h Harness) error {
	j := h.Open(t)
	for _, id := range []string{"c", "a", "b", "aa"} {
		if err := j.Put(twophase.JournalEntry{TxID: id, State: twophase.JournalAborted}, nil); err != nil {
			return err
		}
	}
	if err := j.Delete("b", "missing"); err != nil {
		return fmt.Errorf("Delete with a missing txid: %w", err)
	}
	if err := j.Delete(); err != nil {
		return fmt.Errorf("Delete of nothing: %w", err)
	}
	l, err := j.List()
	if err != nil {
		return err
	}
	var ids []string
	for _, e := range l {
		ids = append(ids, e.TxID)
	}
	if fmt.Sprint(ids) != "[a aa c]" {
		return fmt.Errorf("List = %v, want [a aa c]", ids)
	}
	return nil
}

// CheckTokensOnlyRise: Put's and RaiseTokens' tokens are max-merged per player (a lower
// token never lowers one), the empty player id is ignored, and HighestTokens returns a
// copy.
func CheckTokensOnlyRise(t *testing.T, h Harness) error {
	j := h.Open(t)
	if err := j.Put(entry("tx1", twophase.JournalPrepared), map[string]uint64{"alice": 7, "bob": 9}); err != nil {
		return err
	}
	if err := j.RaiseTokens(map[string]uint64{"alice": 3, "bob": 12, "carol": 1, "": 5}); err != nil {
		return err
	}
	if err := j.RaiseTokens(nil); err != nil {
		return fmt.Errorf("RaiseTokens(nil): %w", err)
	}
	got, err := j.HighestTokens()
	if err != nil {
		return err
	}
	if fmt.Sprint(got) != "map[alice:7 bob:12 carol:1]" {
		return fmt.Errorf("HighestTokens = %v, want map[alice:7 bob:12 carol:1]", got)
	}
	got["alice"] = 1000
	if again, _ := j.HighestTokens(); again["alice"] != 7 {
		return errors.New("HighestTokens returned the journal's own map")
	}
	return nil
}

// CheckConcurrent: concurrent Puts and Gets from 8 goroutines lose nothing.
func CheckConcurrent(t *testing.T, h Harness) error {
	j := h.Open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("g%d-%02d", g, i)
				if err := j.Put(twophase.JournalEntry{TxID: id, State: twophase.JournalPrepared}, map[string]uint64{"p": uint64(g*100 + i)}); err != nil {
					errs <- err
					return
				}
				if _, ok, err := j.Get(id); !ok || err != nil {
					errs <- fmt.Errorf("Get %s right after its Put = %v, %v", id, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	l, _ := j.List()
	tok, _ := j.HighestTokens()
	if len(l) != 160 || tok["p"] != 719 {
		return fmt.Errorf("after concurrent puts: %d records (want 160), token %d (want 719)", len(l), tok["p"])
	}
	return nil
}

// CheckClosed: Close is idempotent, and every use after it fails with
// twophase.ErrJournalClosed.
func CheckClosed(t *testing.T, h Harness) error {
	j := h.Open(t)
	if err := j.Close(); err != nil {
		return err
	}
	if err := j.Close(); err != nil {
		return fmt.Errorf("second Close = %v", err)
	}
	if _, _, err := j.Get("x"); !errors.Is(err, twophase.ErrJournalClosed) {
		return fmt.Errorf("Get after Close = %v, want ErrJournalClosed", err)
	}
	if err := j.Put(twophase.JournalEntry{TxID: "x", State: twophase.JournalAborted}, nil); !errors.Is(err, twophase.ErrJournalClosed) {
		return fmt.Errorf("Put after Close = %v, want ErrJournalClosed", err)
	}
	if _, err := j.List(); !errors.Is(err, twophase.ErrJournalClosed) {
		return fmt.Errorf("List after Close = %v, want ErrJournalClosed", err)
	}
	return nil
}

// CheckSurvivesReopen: records and tokens written before Close are there after a
// reopen (skipped without Harness.Reopen).
func CheckSurvivesReopen(t *testing.T, h Harness) error {
	if h.Reopen == nil {
		return nil
	}
	j := h.Open(t)
	want := entry("tx1", twophase.JournalPrepared)
	if err := j.Put(want, map[string]uint64{"alice": 7}); err != nil {
		return err
	}
	if err := j.Put(twophase.JournalEntry{TxID: "tx0", State: twophase.JournalAborted}, nil); err != nil {
		return err
	}
	if err := j.RaiseTokens(map[string]uint64{"bob": 9}); err != nil {
		return err
	}
	j = h.Reopen(t, j)
	got, ok, err := j.Get("tx1")
	if !ok || err != nil {
		return fmt.Errorf("Get after reopen = %v, %v", ok, err)
	}
	if d := sameEntry(got, want); d != "" {
		return fmt.Errorf("after reopen: %s", d)
	}
	l, _ := j.List()
	tok, _ := j.HighestTokens()
	if len(l) != 2 || tok["alice"] != 7 || tok["bob"] != 9 {
		return fmt.Errorf("after reopen: %d records (want 2), tokens %v (want alice 7, bob 9)", len(l), tok)
	}
	return nil
}
