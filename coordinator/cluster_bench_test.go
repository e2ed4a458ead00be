package coordinator_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// BenchmarkClusterPropose runs whole matches end to end on the in-process cluster: 3
// Raft nodes with fsync'd bbolt logs, 3 shards with in-memory journals, the in-memory
// participant network. Every proposal is a 2-player, 2-shard match of fresh players,
// so nothing conflicts. It reports matches/s and the latency of Propose.
func BenchmarkClusterPropose(b *testing.B) {
	for _, inflight := range []int{1, 256} {
		b.Run(fmt.Sprintf("inflight-%d", inflight), func(b *testing.B) {
			c := newTestCluster(b, clusterOpts{seed: 1, memJournal: true})
			ctx := context.Background()
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < inflight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						p := match(fmt.Sprintf("b%d", i), time.Hour, fmt.Sprintf("x%d@s1", i), fmt.Sprintf("y%d@s2", i))
						t0 := time.Now()
						d, err := c.lc.Propose(ctx, p)
						lat[i] = time.Since(t0)
						if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
							b.Errorf("propose %d: %v %v", i, d, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "matches/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
