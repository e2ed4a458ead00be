package twophase

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkBoltJournalPut measures journal writes, each fsynced before it returns, by
// one writer and by 64 concurrent writers (what a shard serving many txids at once
// does): with group commit the concurrent writers share fsyncs.
func BenchmarkBoltJournalPut(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			j, err := OpenBoltJournal(filepath.Join(b.TempDir(), "j.db"))
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
}
