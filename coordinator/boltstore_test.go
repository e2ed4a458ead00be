package coordinator

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestBoltStoreLogAndStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := s.LastIndex(); i != 0 {
		t.Fatalf("empty LastIndex = %d", i)
	}
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v (raft needs the exact text \"not found\")", err)
	}
	at := time.Unix(1700000000, 123)
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1 + i/5, Type: raft.LogCommand, Data: []byte{byte(i)}, AppendedAt: at})
	}
	logs[3].Extensions = []byte("ext")
	logs[4].Data = nil
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	// Tail truncation (a deposed leader's uncommitted suffix) then a restart.
	if err := s.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 1 || last != 7 {
		t.Fatalf("after truncation and reopen: first=%d last=%d", first, last)
	}
	for i := uint64(1); i <= 7; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&l, logs[i-1]) {
			t.Fatalf("entry %d = %+v, want %+v", i, l, *logs[i-1])
		}
	}
	var l raft.Log
	if err := s.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("term = %d, %v", v, err)
	}
	// Head compaction after a snapshot.
	if err := s.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 6 {
		t.Fatalf("first after compaction = %d", first)
	}
}

func TestDecodeLogRejectsGarbage(t *testing.T) {
	var l raft.Log
	for _, b := range [][]byte{nil, {1}, make([]byte, 26), append([]byte{1}, make([]byte, 25)...)[:26]} {
		b2 := append([]byte(nil), b...)
		if len(b2) == 26 {
			b2 = append(b2, 0xff) // a length with no bytes behind it
		}
		if err := decodeLog(b2, &l); err == nil {
			t.Errorf("decodeLog(%x) accepted garbage", b2)
		}
	}
}
