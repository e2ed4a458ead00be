package collect

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// TestSinkRoundTrip: two incarnations of a shard and one coordinator node write their
// files; the first shard incarnation is killed mid-write (a torn last line). ReadDir
// returns every complete event, a node's files in incarnation order, Seq per shard in
// that order, At on the shared epoch.
func TestSinkRoundTrip(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Now().Add(-time.Second)

	s1a, err := NewSink(dir, "s1", epoch)
	if err != nil {
		t.Fatal(err)
	}
	s1a.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardPrepared, TxID: "t1",
		Players: []history.PlayerToken{{Player: "a", Token: 7}}})
	s1a.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardCommitted, TxID: "t1", Seq: 99})
	// kill -9 mid-write: half a record, no newline.
	f, err := os.OpenFile(s1a.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"shard":{"shard":"s1","seq":0,"at_ns":5,"kind":"prep`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	_ = s1a.Close()

	c1, err := NewSink(dir, "c1", epoch)
	if err != nil {
		t.Fatal(err)
	}
	c1.Lease(history.LeaseEvent{Index: 0, Kind: history.LeaseRestored})
	c1.Lease(history.LeaseEvent{Node: "c1", Index: 5, Kind: history.LeaseGranted, TxID: "t1",
		Players: []history.PlayerToken{{Player: "a", Token: 5}}})

	// The restarted shard: a later start time in its file name.
	waitNewNano(t)
	s1b, err := NewSink(dir, "s1", epoch)
	if err != nil {
		t.Fatal(err)
	}
	s1b.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardAborted, TxID: "t2"})
	for _, s := range []*Sink{c1, s1b} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are not history files are ignored.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	shard, lease, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(shard) != 3 {
		t.Fatalf("shard events %+v, want 3", shard)
	}
	want := []struct {
		seq  uint64
		kind history.ShardEventKind
		txid string
	}{{1, history.ShardPrepared, "t1"}, {2, history.ShardCommitted, "t1"}, {3, history.ShardAborted, "t2"}}
	for i, w := range want {
		ev := shard[i]
		if ev.Seq != w.seq || ev.Kind != w.kind || ev.TxID != w.txid || ev.Shard != "s1" {
			t.Errorf("shard event %d = %+v, want %+v", i, ev, w)
		}
		if ev.At < time.Second || ev.At > time.Hour {
			t.Errorf("shard event %d At %s: not measured from the epoch", i, ev.At)
		}
		if i > 0 && ev.At < shard[i-1].At {
			t.Errorf("At went backwards: %s after %s", ev.At, shard[i-1].At)
		}
	}
	if len(shard[0].Players) != 1 || shard[0].Players[0] != (history.PlayerToken{Player: "a", Token: 7}) {
		t.Errorf("players %+v", shard[0].Players)
	}
	if len(lease) != 2 || lease[0].Kind != history.LeaseRestored || lease[1].Kind != history.LeaseGranted ||
		lease[0].Node != "c1" || lease[1].Index != 5 || lease[1].Players[0].Token != 5 {
		t.Errorf("lease events %+v", lease)
	}
}

// waitNewNano makes sure the next NewSink gets a later start time than the last one.
func waitNewNano(t *testing.T) {
	t.Helper()
	start := time.Now().UnixNano()
	for time.Now().UnixNano() == start {
	}
}

// TestReadDirRejectsCorruption: a bad line that is not the torn last line, a record
// with neither or both kinds, and a file name that is not <node>.<start>.<pid>.jsonl
// are all ErrCorrupt.
func TestReadDirRejectsCorruption(t *testing.T) {
	for name, c := range map[string]struct{ file, body string }{
		"bad middle line":     {"s1.1.2.jsonl", "{\"shard\":{\"shard\":\"s1\",\"kind\":\"prepared\",\"txid\":\"t\"}}\nnot json\n{\"shard\":{\"shard\":\"s1\",\"kind\":\"aborted\",\"txid\":\"t\"}}\n"},
		"complete bad last":   {"s1.1.2.jsonl", "{\"shard\":{\"shard\":\"s1\",\"kind\":\"prepared\",\"txid\":\"t\"}}\n{oops}\n"},
		"empty record":        {"s1.1.2.jsonl", "{}\n"},
		"both kinds":          {"s1.1.2.jsonl", "{\"shard\":{\"shard\":\"s1\"},\"lease\":{\"node\":\"c1\"}}\n"},
		"unknown field":       {"s1.1.2.jsonl", "{\"shrad\":{}}\n"},
		"name without pid":    {"s1.12.jsonl", ""},
		"name with bad start": {"s1.x.2.jsonl", ""},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ReadDir(dir); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadDir = %v, want ErrCorrupt", err)
			}
		})
	}
	if _, _, err := ReadDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("ReadDir of a missing directory succeeded")
	}
}

func TestSinkBadNodeAndClosed(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"", "a/b", ".hidden", "a b"} {
		if _, err := NewSink(dir, n, time.Now()); !errors.Is(err, ErrBadNode) {
			t.Errorf("NewSink(%q) = %v, want ErrBadNode", n, err)
		}
	}
	if _, err := NewSink(filepath.Join(dir, "missing"), "c1", time.Now()); err == nil {
		t.Error("NewSink in a missing directory succeeded")
	}
	s, err := NewSink(dir, "c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s.Lease(history.LeaseEvent{Kind: history.LeaseGranted})
	if !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("Err after a write past Close = %v, want ErrClosed", s.Err())
	}
}

// TestSinkCloseLogged: a clean Sink closes without a word; one that lost an event
// says the history is incomplete, and a failed close is logged too.
func TestSinkCloseLogged(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))

	clean, err := NewSink(dir, "c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clean.Lease(history.LeaseEvent{Kind: history.LeaseGranted})
	clean.CloseLogged(log)
	if buf.Len() != 0 {
		t.Fatalf("a clean sink logged %q", buf.String())
	}
	if clean.Lease(history.LeaseEvent{Kind: history.LeaseGranted}); !errors.Is(clean.Err(), ErrClosed) {
		t.Fatalf("CloseLogged left the sink open: Err = %v", clean.Err())
	}

	broken, err := NewSink(dir, "c2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_ = broken.f.Close() // the next write and the Sink's own Close fail
	broken.Lease(history.LeaseEvent{Kind: history.LeaseGranted})
	broken.CloseLogged(log)
	out := buf.String()
	if !strings.Contains(out, "level=ERROR msg=\"the chaos history is incomplete\"") || !strings.Contains(out, "level=WARN msg=\"history close\"") {
		t.Fatalf("a sink that lost an event logged %q, want the incomplete history and the failed close", out)
	}
}

// TestSinkConcurrent: events from many goroutines are whole lines, none lost.
func TestSinkConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSink(dir, "s1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardPrepared, TxID: fmt.Sprintf("t%d-%d", w, i)})
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	shard, _, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, ev := range shard {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has Seq %d", i, ev.Seq)
		}
		seen[ev.TxID] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("read %d distinct events, want %d", len(seen), workers*each)
	}
}

// TestReadDirMarksIncarnations: a coordinator's second incarnation starts with a
// restore marker at index 0 (its predecessor's last entry may be torn and is applied
// again); a shard's incarnations get none (they record no lease events).
func TestReadDirMarksIncarnations(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Now().Add(-time.Second)
	sink := func(node string) *Sink {
		t.Helper()
		waitNewNano(t)
		s, err := NewSink(dir, node, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	grant := func(idx uint64) history.LeaseEvent {
		return history.LeaseEvent{Index: idx, Kind: history.LeaseGranted, TxID: "t", Players: []history.PlayerToken{{Player: "a", Token: idx}}}
	}
	c1a := sink("c1")
	c1a.Lease(grant(5))
	s1a := sink("s1")
	s1a.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardPrepared, TxID: "t"})
	c1b := sink("c1")
	c1b.Lease(grant(5))
	c1b.Lease(grant(6))
	s1b := sink("s1")
	s1b.Shard(history.ShardEvent{Shard: "s1", Kind: history.ShardCommitted, TxID: "t"})
	for _, s := range []*Sink{c1a, s1a, c1b, s1b} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, lease, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range lease {
		got = append(got, fmt.Sprintf("%s:%s@%d", ev.Node, ev.Kind, ev.Index))
	}
	want := []string{"c1:granted@5", "c1:restored@0", "c1:granted@5", "c1:granted@6"}
	if !slices.Equal(got, want) {
		t.Fatalf("lease events %v, want %v", got, want)
	}
	if lease[1].At != lease[2].At {
		t.Errorf("marker stamped %v, want its incarnation's first record's %v", lease[1].At, lease[2].At)
	}
}
