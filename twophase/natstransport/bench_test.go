package natstransport_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

var benchSeq atomic.Uint64

// BenchmarkPrepareRoundTrip measures Send(Prepare) → JetStream → durable consumer →
// Participant (MemJournal) → vote on core NATS → ReplyHandler, with 1 and 64 in
// flight, unsigned and signed (the coordinator signs, the shard verifies). msgs/s
// counts the command and the vote of each round trip.
func BenchmarkPrepareRoundTrip(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		for _, signed := range []bool{false, true} {
			b.Run(fmt.Sprintf("inflight=%d/signed=%v", inflight, signed), func(b *testing.B) { benchPrepareRoundTrip(b, inflight, signed) })
		}
	}
}

func benchPrepareRoundTrip(b *testing.B, inflight int, signed bool) {
	env := newNatsEnv(b)
	votes := make(chan struct{}, 1024)
	coord := newCoordinator(b, env.connect(), func(r *smv1.ShardReply) {
		if r.GetVote() != nil {
			votes <- struct{}{}
		}
	})
	var verify func(*natstransport.ParticipantConfig)
	if signed {
		key := newSigner(b)
		coord.SetSigner(key)
		verify = func(c *natstransport.ParticipantConfig) { c.Verifier = trust(b, key) }
	}
	srv := serve(b, env.connect(), "s1", newParticipant(b, "s1", newGame(), nil), verify)
	ctx := context.Background()
	sendOne := func() {
		txid := fmt.Sprintf("bench-%d", benchSeq.Add(1))
		if err := coord.Send(ctx, "s1", prepare(txid, "s1", players("p-"+txid)...)); err != nil {
			b.Fatal(err)
		}
	}
	wait := func() {
		select {
		case <-votes:
		case <-time.After(10 * time.Second):
			b.Fatal("no vote within 10s")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for ; sent < min(inflight, b.N); sent++ {
		sendOne()
	}
	for range b.N {
		wait()
		if sent < b.N {
			sendOne()
			sent++
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(2*float64(b.N)/elapsed.Seconds(), "msgs/s")
	if st := srv.Stats(); st.SignatureRejected() != 0 {
		b.Fatalf("signatures refused: %+v", st)
	}
}
