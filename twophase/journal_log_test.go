package twophase

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func openLog(t *testing.T, path string) *LogJournal {
	t.Helper()
	j, err := OpenLogJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// logState is what a journal holds, for comparing two of them.
type logState struct {
	Recs   []JournalEntry
	Tokens map[string]uint64
}

func stateOf(t *testing.T, j Journal) logState {
	t.Helper()
	recs, err := j.List()
	if err != nil {
		t.Fatal(err)
	}
	toks, err := j.HighestTokens()
	if err != nil {
		t.Fatal(err)
	}
	return logState{recs, toks}
}

func logPut(t *testing.T, j Journal, id string, st JournalState, tok uint64) {
	t.Helper()
	e := JournalEntry{TxID: id, State: st, Term: 3,
		Players: []*smv1.ShardPlayer{{PlayerId: "p-" + id, FencingToken: tok}}}
	if err := j.Put(e, map[string]uint64{"p-" + id: tok}); err != nil {
		t.Fatal(err)
	}
}

// A crash can cut the last write anywhere. Reopening after a cut at every byte of the
// last frame, or with zeros where it should be, yields exactly the state before that
// write, and the journal takes writes again.
func TestLogJournalTornLastFrame(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.log")
	j := openLog(t, path)
	logPut(t, j, "tx-1", JournalPrepared, 7)
	logPut(t, j, "tx-2", JournalCommitted, 9)
	before := stateOf(t, j)
	fi, _ := os.Stat(path)
	cut := fi.Size()
	logPut(t, j, "tx-3", JournalPrepared, 11)
	after := stateOf(t, j)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, data []byte, want logState) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j2, err := OpenLogJournal(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer j2.Close()
		if got := stateOf(t, j2); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: state %+v, want %+v", name, got, want)
		}
		logPut(t, j2, "tx-4", JournalAborted, 12) // and it appends after the cut
		if _, ok, _ := j2.Get("tx-4"); !ok {
			t.Fatalf("%s: write after recovery lost", name)
		}
	}
	for n := cut; n < int64(len(whole)); n++ {
		check(fmt.Sprintf("cut-%d", n), whole[:n], before)
	}
	zeroed := append(append([]byte{}, whole[:cut]...), make([]byte, int64(len(whole))-cut)...)
	check("zeroed", zeroed, before)
	flipped := append([]byte{}, whole...)
	flipped[len(flipped)-1] ^= 0xff // the last frame's CRC fails at the very end
	check("flipped-last", flipped, before)
	holed := append([]byte{}, whole...)
	clear(holed[cut : cut+logJournalHead]) // its header's page lost, the rest written
	check("header-lost", holed, before)
	lengthy := append([]byte{}, whole...)
	lengthy[cut] = 0x7f // its length garbled: it claims to run past the end
	check("length-garbled", lengthy, before)
	check("whole", whole, after)
}

// Damage that is not a torn last write is refused, not skipped: skipping it could
// forget a vote that was sent.
func TestLogJournalCorruptMiddleRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.log")
	j := openLog(t, path)
	logPut(t, j, "tx-1", JournalPrepared, 7)
	fi, _ := os.Stat(path)
	first := fi.Size()
	logPut(t, j, "tx-2", JournalPrepared, 8)
	_ = j.Close()
	data, _ := os.ReadFile(path)
	data[first-1] ^= 0xff // inside the first frame, which another frame follows
	bad := filepath.Join(dir, "bad.log")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLogJournal(bad); !errors.Is(err, ErrJournalCorrupt) {
		t.Fatalf("open with a damaged middle frame: %v, want ErrJournalCorrupt", err)
	}
	notLog := filepath.Join(dir, "other")
	if err := os.WriteFile(notLog, []byte("hello, this is not a journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLogJournal(notLog); !errors.Is(err, ErrJournalCorrupt) {
		t.Fatalf("open of a foreign file: %v, want ErrJournalCorrupt", err)
	}
	garbled := append([]byte{}, data...)
	garbled[first-1] ^= 0xff                                  // undo: the first frame intact again
	garbled[len(logJournalMagic)] = 0x7f                      // but its length claims the whole file
	if err := os.WriteFile(bad, garbled, 0o600); err != nil { // an intact frame follows it
		t.Fatal(err)
	}
	if _, err := OpenLogJournal(bad); !errors.Is(err, ErrJournalCorrupt) {
		t.Fatalf("open with a garbled first length: %v, want ErrJournalCorrupt", err)
	}
}

// Once the file has doubled past the live data it is rewritten: it shrinks, and what
// it holds survives a reopen unchanged.
func TestLogJournalRewrite(t *testing.T) {
	old := logJournalMinCompact
	logJournalMinCompact = 4 << 10
	t.Cleanup(func() { logJournalMinCompact = old })
	path := filepath.Join(t.TempDir(), "j.log")
	j := openLog(t, path)
	rewrites := 0
	last := int64(0)
	for i := range 2000 {
		id := fmt.Sprintf("tx-%05d", i)
		logPut(t, j, id, JournalPrepared, uint64(i+1))
		logPut(t, j, id, JournalCommitted, uint64(i+1))
		if i%2 == 0 {
			if err := j.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < last {
			rewrites++
		}
		last = fi.Size()
	}
	if rewrites == 0 {
		t.Fatal("the file was never rewritten")
	}
	if last > 4*j.st.size+logJournalMinCompact {
		t.Fatalf("file %d bytes for %d live bytes", last, j.st.size)
	}
	want := stateOf(t, j)
	if len(want.Recs) != 1000 || len(want.Tokens) != 2000 {
		t.Fatalf("%d records, %d tokens; want 1000, 2000", len(want.Recs), len(want.Tokens))
	}
	_ = j.Close()
	j2 := openLog(t, path)
	if got := stateOf(t, j2); !reflect.DeepEqual(got, want) {
		t.Fatal("state changed across a reopen after rewrites")
	}
	if _, err := os.Stat(path + logJournalTmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rewrite left its temporary file: %v", err)
	}
}

// A second opener of the same journal fails instead of writing beside the first.
func TestLogJournalExclusive(t *testing.T) {
	old := journalLockTimeout
	t.Cleanup(func() { journalLockTimeout = old })
	journalLockTimeout = 0
	path := filepath.Join(t.TempDir(), "j.log")
	j := openLog(t, path)
	if j2, err := OpenLogJournal(path); err == nil {
		_ = j2.Close()
		t.Fatal("a second open of a journal in use succeeded")
	}
	_ = j.Close()
	j3 := openLog(t, path) // released by Close
	_ = j3.Close()
}

// A write that fails leaves the journal broken: later writes fail too, because what
// a failed write or fsync left on disk is unknown; reads still answer.
func TestLogJournalBrokenAfterFailedWrite(t *testing.T) {
	j := openLog(t, filepath.Join(t.TempDir(), "j.log"))
	logPut(t, j, "tx-1", JournalPrepared, 1)
	_ = j.f.Close() // the disk goes away under it
	if err := j.Put(JournalEntry{TxID: "tx-2", State: JournalPrepared}, nil); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	if err := j.RaiseTokens(map[string]uint64{"p": 5}); err == nil {
		t.Fatal("write after a failed write succeeded")
	}
	if _, ok, err := j.Get("tx-2"); ok || err != nil {
		t.Fatalf("failed write visible: %v %v", ok, err)
	}
	if _, ok, err := j.Get("tx-1"); !ok || err != nil {
		t.Fatalf("earlier record lost: %v %v", ok, err)
	}
}

// OpenJournal keeps an existing bbolt journal a bbolt journal, and makes new ones logs.
func TestOpenJournalDetectsFormat(t *testing.T) {
	dir := t.TempDir()
	bp := filepath.Join(dir, "old.db")
	bj, err := OpenBoltJournal(bp)
	if err != nil {
		t.Fatal(err)
	}
	logPut(t, bj, "tx-1", JournalPrepared, 4)
	_ = bj.Close()
	j, err := OpenJournal(bp)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := j.(*BoltJournal); !ok {
		t.Fatalf("existing bbolt journal opened as %T", j)
	}
	if _, ok, _ := j.Get("tx-1"); !ok {
		t.Fatal("vote in the bbolt journal lost")
	}
	_ = j.Close()
	j, err = OpenJournal(filepath.Join(dir, "new.journal"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := j.(*LogJournal); !ok {
		t.Fatalf("new journal is %T, want *LogJournal", j)
	}
	_ = j.Close()
}
