package twophase_test

import (
	"path/filepath"
	"testing"

	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/journaltest"
)

// Every journal that ships passes the exported conformance suite.
func TestJournalConformance(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		journaltest.Run(t, journaltest.Harness{Open: func(*testing.T) twophase.Journal { return twophase.NewMemJournal() }})
	})
	t.Run("bolt", func(t *testing.T) {
		open := func(t *testing.T, path string) twophase.Journal {
			j, err := twophase.OpenBoltJournal(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = j.Close() })
			return j
		}
		journaltest.Run(t, journaltest.Harness{
			Open: func(t *testing.T) twophase.Journal { return open(t, filepath.Join(t.TempDir(), "journal.db")) },
			Reopen: func(t *testing.T, j twophase.Journal) twophase.Journal {
				path := j.(*twophase.BoltJournal).Path()
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				return open(t, path)
			},
		})
	})
	t.Run("log", func(t *testing.T) {
		open := func(t *testing.T, path string) twophase.Journal {
			j, err := twophase.OpenLogJournal(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = j.Close() })
			return j
		}
		journaltest.Run(t, journaltest.Harness{
			Open: func(t *testing.T) twophase.Journal { return open(t, filepath.Join(t.TempDir(), "journal.log")) },
			Reopen: func(t *testing.T, j twophase.Journal) twophase.Journal {
				path := j.(*twophase.LogJournal).Path()
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				return open(t, path)
			},
		})
	})
}
