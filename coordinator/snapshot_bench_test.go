package coordinator

import (
	"io"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
)

// snapshotStore returns a raft.FileSnapshotStore in a temporary directory: the store a
// node persists to (raft.go), with its CRC and fsync.
func snapshotStore(tb testing.TB) *raft.FileSnapshotStore {
	s, err := raft.NewFileSnapshotStore(tb.TempDir(), 1, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// persistSnapshot takes a snapshot of f and persists it into store as Raft does, and
// returns its id and size.
func persistSnapshot(tb testing.TB, f *FSM, store *raft.FileSnapshotStore) (string, int64) {
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Release()
	idx := f.AppliedIndex()
	sink, err := store.Create(raft.SnapshotVersionMax, idx, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		tb.Fatal(err)
	}
	metas, err := store.List()
	if err != nil || len(metas) == 0 {
		tb.Fatalf("list snapshots: %v %v", metas, err)
	}
	return metas[0].ID, metas[0].Size
}

// BenchmarkSnapshotPersist measures FSM.Snapshot and Persist of memMatches active
// matches into a raft.FileSnapshotStore, fsync included: the time from Raft deciding
// to snapshot to the snapshot being durable.
func BenchmarkSnapshotPersist(b *testing.B) {
	f := memFSM(b)
	store := snapshotStore(b)
	var size int64
	b.ResetTimer()
	for b.Loop() {
		_, size = persistSnapshot(b, f, store)
	}
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
}

// BenchmarkSnapshotRestore measures a new node restoring that snapshot: opening it in
// the raft.FileSnapshotStore (which checks its CRC) and FSM.Restore into an empty FSM.
// The FSM it was taken of is dropped first, as on a new node (so run it after
// BenchmarkSnapshotPersist, or alone).
func BenchmarkSnapshotRestore(b *testing.B) {
	f := memFSM(b)
	store := snapshotStore(b)
	id, size := persistSnapshot(b, f, store)
	want := f.Counts()
	f = nil
	memMu.Lock()
	memShared = nil
	memMu.Unlock()
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		_, rc, err := store.Open(id)
		if err != nil {
			b.Fatal(err)
		}
		g := NewFSM(nil, nil)
		if err := g.Restore(rc); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := g.Counts(); got != want {
			b.Fatalf("restored %+v, want %+v", got, want)
		}
		g = nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
}
