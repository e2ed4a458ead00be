package journaltest_test

import (
	"maps"
	"sync"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/journaltest"
)

// The in-memory journal passes every check; reopening one keeps its data (the same
// value), which is what a durable journal must look like from outside.
func TestMemJournalConforms(t *testing.T) {
	journaltest.Run(t, journaltest.Harness{
		Open:   func(*testing.T) twophase.Journal { return twophase.NewMemJournal() },
		Reopen: func(_ *testing.T, j twophase.Journal) twophase.Journal { return reopenable{j} },
	})
}

// reopenable is a journal "reopened" as itself, ignoring the Close before it.
type reopenable struct{ twophase.Journal }

// Each deliberately broken journal fails the checks named for it: a suite that never
// fails proves nothing.
func TestSuiteCatchesBrokenJournals(t *testing.T) {
	mem := func(*testing.T) twophase.Journal { return twophase.NewMemJournal() }
	cases := []struct {
		name   string
		h      journaltest.Harness
		failed []string
	}{
		{"tokens can fall", journaltest.Harness{Open: func(*testing.T) twophase.Journal { return &lowering{Journal: twophase.NewMemJournal()} }},
			[]string{"TokensOnlyRise"}},
		{"keeps the caller's players", journaltest.Harness{Open: func(*testing.T) twophase.Journal { return newAliasing() }},
			[]string{"NoAliasing"}},
		{"forgets on reopen", journaltest.Harness{Open: mem, Reopen: func(*testing.T, twophase.Journal) twophase.Journal { return twophase.NewMemJournal() }},
			[]string{"SurvivesReopen"}},
		{"lists unsorted", journaltest.Harness{Open: func(*testing.T) twophase.Journal { return reversed{twophase.NewMemJournal()} }},
			[]string{"ListSortedAndDelete"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, ck := range journaltest.Checks() {
				err := ck.Fn(t, c.h)
				want := false
				for _, n := range c.failed {
					want = want || n == ck.Name
				}
				switch {
				case want && err == nil:
					t.Errorf("%s passed a journal that %s", ck.Name, c.name)
				case !want && err != nil:
					t.Errorf("%s failed for the wrong reason: %v", ck.Name, err)
				}
			}
		})
	}
}

// lowering takes RaiseTokens' tokens as they come, lowering them too.
type lowering struct {
	twophase.Journal
	mu   sync.Mutex
	over map[string]uint64
}

func (l *lowering) RaiseTokens(tokens map[string]uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over == nil {
		l.over = map[string]uint64{}
	}
	for p, v := range tokens {
		if p != "" {
			l.over[p] = v
		}
	}
	return l.Journal.RaiseTokens(tokens)
}

func (l *lowering) HighestTokens() (map[string]uint64, error) {
	m, err := l.Journal.HighestTokens()
	l.mu.Lock()
	defer l.mu.Unlock()
	maps.Copy(m, l.over)
	return m, err
}

// aliasing keeps the players slice it was given and returns it as is.
type aliasing struct {
	twophase.Journal
	mu      sync.Mutex
	players map[string][]*smv1.ShardPlayer
}

func newAliasing() *aliasing {
	return &aliasing{Journal: twophase.NewMemJournal(), players: map[string][]*smv1.ShardPlayer{}}
}

func (a *aliasing) Put(e twophase.JournalEntry, tokens map[string]uint64) error {
	if err := a.Journal.Put(e, tokens); err != nil {
		return err
	}
	a.mu.Lock()
	a.players[e.TxID] = e.Players
	a.mu.Unlock()
	return nil
}

func (a *aliasing) Get(txid string) (twophase.JournalEntry, bool, error) {
	e, ok, err := a.Journal.Get(txid)
	a.mu.Lock()
	if ps, have := a.players[txid]; have && ok {
		e.Players = ps
	}
	a.mu.Unlock()
	return e, ok, err
}

// reversed lists newest txid first.
type reversed struct{ twophase.Journal }

func (r reversed) List() ([]twophase.JournalEntry, error) {
	l, err := r.Journal.List()
	for i, j := 0, len(l)-1; i < j; i, j = i+1, j-1 {
		l[i], l[j] = l[j], l[i]
	}
	return l, err
}
