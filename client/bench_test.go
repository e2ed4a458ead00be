package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/client"
)

// BenchmarkClientPropose measures whole matches through the NATS API: the client's
// JetStream publish, the leader's intake, policy-free validation, Raft (3 nodes, durable
// stores), two-phase commit with two in-memory shards, the decision back to the client.
// It reports matches/s and the latency percentiles of one Propose.
func BenchmarkClientPropose(b *testing.B) {
	c := startCluster(b)
	cl := newClient(b, c.Connect(), client.Config{})
	var run atomic.Int64
	for _, proposers := range []int{1, 64} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			round := run.Add(1)
			ctx := context.Background()
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for g := 0; g < proposers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						p := proposal(fmt.Sprintf("bench-%d-%d", round, i))
						t0 := time.Now()
						d, err := cl.Propose(ctx, p)
						lat[i] = time.Since(t0)
						if err != nil || d.GetTxid() == "" {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d proposals failed", n, b.N)
			}
			slices.Sort(lat)
			pct := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "matches/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
