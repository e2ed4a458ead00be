package etcdlease_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/lease/etcdlease"
)

// BenchmarkAcquireRelease measures etcd's floor for the store on this machine: one
// Acquire (one multi-key Txn) and one Release (a read and one multi-key Txn) of a
// 2-player and a 10-player match, against a single-member embedded etcd writing to a
// t.TempDir (with fsync). "serial" is one caller, so latency-bound; "parallel" runs
// 8 callers per GOMAXPROCS on disjoint players, so etcd can batch their Txns. It
// reports acquire+release pairs per second and write Txns per second (two per pair).
func BenchmarkAcquireRelease(b *testing.B) {
	srv := startEtcd(b)
	s := newStore(b, srv.client(b), etcdlease.Options{})
	for _, n := range []int{2, 10} {
		b.Run(fmt.Sprintf("players=%d/serial", n), func(b *testing.B) {
			i := 0
			start := time.Now()
			for b.Loop() {
				acquireRelease(b, s, fmt.Sprintf("s%d-%d", n, i), n)
				i++
			}
			report(b, time.Since(start))
		})
		b.Run(fmt.Sprintf("players=%d/parallel", n), func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(8)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					acquireRelease(b, s, fmt.Sprintf("p%d-%d", n, seq.Add(1)), n)
				}
			})
			report(b, time.Since(start))
		})
	}
}

func acquireRelease(b *testing.B, s *etcdlease.Store, txid string, n int) {
	ctx := context.Background()
	players := make([]string, n)
	for j := range players {
		players[j] = fmt.Sprintf("%s/%d", txid, j)
	}
	if _, err := s.Acquire(ctx, txid, players, 10*time.Second); err != nil {
		b.Error(err)
		return
	}
	if err := s.Release(ctx, txid); err != nil {
		b.Error(err)
	}
}

func report(b *testing.B, elapsed time.Duration) {
	ops := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	b.ReportMetric(2*ops, "txn/s")
}
