package twophase

import (
	"runtime"
	"time"

	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// BenchmarkJournalPut measures journal writes, each fsynced before it returns, by
// one writer and by 64 concurrent writers (what a shard serving many txids at once
// does), for the bbolt and the append-only journal: with group commit the concurrent
// writers share fsyncs.
func BenchmarkJournalPut(b *testing.B) {
	opens := []struct {
		name string
		open func(string) (Journal, error)
	}{
		{"bolt", func(p string) (Journal, error) { return OpenBoltJournal(p) }},
		{"log", func(p string) (Journal, error) { return OpenLogJournal(p) }},
	}
	for _, o := range opens {
		for _, writers := range []int{1, 64} {
			benchJournalPut(b, o.name, o.open, writers)
		}
	}
}

func benchJournalPut(b *testing.B, name string, open func(string) (Journal, error), writers int) {
	b.Run(fmt.Sprintf("%s/writers=%d", name, writers), func(b *testing.B) {
		j, err := open(filepath.Join(b.TempDir(), "j"))
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		var seq atomic.Uint64
		b.SetParallelism((writers + 1) / 2) // GOMAXPROCS=2 here: parallelism × 2 goroutines
		if writers == 1 {
			b.SetParallelism(1)
		}
		b.ResetTimer()
		run := func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				e := JournalEntry{TxID: fmt.Sprintf("tx-%d", n), State: JournalPrepared, Term: 1}
				if err := j.Put(e, map[string]uint64{fmt.Sprintf("p%d", n): n}); err != nil {
					b.Fatal(err)
				}
			}
		}
		if writers == 1 {
			for i := 0; i < b.N; i++ {
				n := seq.Add(1)
				if err := j.Put(JournalEntry{TxID: fmt.Sprintf("tx-%d", n), State: JournalPrepared, Term: 1}, nil); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		b.RunParallel(run)
	})
}

// BenchmarkLogJournalMemory reports the heap a LogJournal holds per record, for
// sizing a shard: it keeps every record until Participant.Compact drops it (decided
// records after TombstoneRetention). Records are a 1v1 match's: one player, txid
// "tx-<index>-<pos>" as the coordinator makes them.
func BenchmarkLogJournalMemory(b *testing.B) {
	const n = 200_000
	for range b.N {
		j, err := OpenLogJournal(filepath.Join(b.TempDir(), "j"))
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			id := fmt.Sprintf("tx-%d-%d", 1_000_000+i, i%512)
			p := fmt.Sprintf("player-%d", i)
			rec := encodeJournalEntry(JournalEntry{TxID: id, State: JournalCommitted, Term: 7, RecordedAt: time.Now(),
				RecordedMono: time.Duration(i), Players: []*smv1.ShardPlayer{{PlayerId: p, FencingToken: uint64(i) << 16}}})
			j.apply([]*logJournalReq{{op: logJournalPut, txid: id, rec: rec, tokens: map[string]uint64{p: uint64(i) << 16}}})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/record")
		runtime.KeepAlive(j)
		_ = j.Close()
	}
}
