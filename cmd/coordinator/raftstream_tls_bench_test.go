package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/internal/pki"
)

// BenchmarkRaftTLS measures Raft apply throughput of a 3-node in-process cluster
// over the real TCP stream layer, plain and with mutual TLS, 256 applies in flight
// (throughput) and 1 (latency: each apply a round of RPCs), with 256-byte payloads and in-memory log stores (so the transport's share is not
// hidden behind disk syncs: the ratio is an upper bound of TLS's cost).
func BenchmarkRaftTLS(b *testing.B) {
	for _, bc := range []struct {
		mode     string
		inFlight int
	}{{"tcp", 256}, {"tls", 256}, {"tcp", 1}, {"tls", 1}} {
		mode, inFlight := bc.mode, bc.inFlight
		b.Run(fmt.Sprintf("%s/inflight=%d", mode, inFlight), func(b *testing.B) {
			files := make([]raftTLSFiles, 3)
			if mode == "tls" {
				p := newTestPKI(b)
				for i := range files {
					files[i] = p.files(b, fmt.Sprintf("n%d", i+1), p.ca, pki.LeafOptions{Hosts: []string{"127.0.0.1"}}, p.ca.CertPEM())
				}
			}
			nodes := startNodes(b, files, raftStreamOptions{})
			leader := waitLeader(b, nodes)
			payload := make([]byte, 256)
			futures := make([]raft.ApplyFuture, 0, inFlight)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if len(futures) == inFlight {
					if err := futures[0].Error(); err != nil {
						b.Fatal(err)
					}
					futures = futures[1:]
				}
				futures = append(futures, leader.r.Apply(payload, 10*time.Second))
			}
			for _, f := range futures {
				if err := f.Error(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "applies/s")
		})
	}
}
