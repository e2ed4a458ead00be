package twophase

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBoltJournalGroupCommit: many concurrent writes (which share transactions) are all
// durable with their tokens after a reopen, and a write bbolt refuses fails alone while
// the writes batched with it succeed.
func TestBoltJournalGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := OpenBoltJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	bad := strings.Repeat("x", 40000) // over bbolt's key size limit
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			switch {
			case i%50 == 7:
				errs[i] = j.Put(JournalEntry{TxID: bad + fmt.Sprint(i), State: JournalPrepared, Term: 1}, nil)
			case i%3 == 0:
				errs[i] = j.RaiseTokens(map[string]uint64{fmt.Sprintf("q%d", i): uint64(i + 1)})
			default:
				errs[i] = j.Put(JournalEntry{TxID: fmt.Sprintf("tx-%d", i), State: JournalPrepared, Term: 1},
					map[string]uint64{fmt.Sprintf("p%d", i): uint64(i + 1)})
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i%50 == 7) != (err != nil) {
			t.Errorf("write %d: err = %v", i, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = OpenBoltJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tokens, err := j.HighestTokens()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		switch {
		case i%50 == 7:
			if _, ok, _ := j.Get(bad + fmt.Sprint(i)); ok {
				t.Errorf("refused write %d is in the journal", i)
			}
		case i%3 == 0:
			if got := tokens[fmt.Sprintf("q%d", i)]; got != uint64(i+1) {
				t.Errorf("token q%d = %d, want %d", i, got, i+1)
			}
		default:
			if _, ok, err := j.Get(fmt.Sprintf("tx-%d", i)); !ok || err != nil {
				t.Errorf("tx-%d lost after reopen (%v)", i, err)
			}
			if got := tokens[fmt.Sprintf("p%d", i)]; got != uint64(i+1) {
				t.Errorf("token p%d = %d, want %d", i, got, i+1)
			}
		}
	}
}
