package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsembed"
)

// The floors of `coordinator bench`: what a match is built from, measured alone.

// natsFixture is an embedded NATS server with JetStream (file store) and two
// connections: one answers requests, the other sends them and publishes.
type natsFixture struct {
	dir      string
	srv      *server.Server
	resp, nc *nats.Conn
	js       jetstream.JetStream
	payload  []byte
}

const (
	benchEcho   = "bench.echo"
	benchStream = "BENCH"
)

func startNATSFixture() (_ *natsFixture, err error) {
	f := &natsFixture{payload: make([]byte, 256)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.dir, err = os.MkdirTemp("", "shardmatch-bench-nats-"); err != nil {
		return f, err
	}
	if f.srv, err = natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: f.dir, ServerName: "shardmatch-bench"}); err != nil {
		return f, err
	}
	if f.resp, err = nats.Connect(f.srv.ClientURL()); err != nil {
		return f, err
	}
	if _, err = f.resp.Subscribe(benchEcho, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return f, err
	}
	if err = f.resp.Flush(); err != nil {
		return f, err
	}
	if f.nc, err = nats.Connect(f.srv.ClientURL()); err != nil {
		return f, err
	}
	if f.js, err = jetstream.New(f.nc, jetstream.WithPublishAsyncMaxPending(asyncInFlight)); err != nil {
		return f, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = f.js.CreateStream(ctx, jetstream.StreamConfig{Name: benchStream, Subjects: []string{"bench.js"},
		Storage: jetstream.FileStorage})
	return f, err
}

// request is one core NATS request-reply round trip.
func (f *natsFixture) request(ctx context.Context) error {
	_, err := f.nc.RequestWithContext(ctx, benchEcho, f.payload)
	return err
}

// publish is one JetStream publish waiting for its PubAck.
func (f *natsFixture) publish(ctx context.Context) error {
	_, err := f.js.Publish(ctx, "bench.js", f.payload)
	return err
}

// publishAsync publishes without waiting, up to inflight unacknowledged, for d or
// count messages, and counts the PubAcks.
func (f *natsFixture) publishAsync(ctx context.Context, inflight int, d time.Duration, count int) benchRow {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var acked, failed atomic.Uint64
	var wg sync.WaitGroup
	t0 := time.Now()
	for n := 0; ctx.Err() == nil && (count == 0 || n < count); n++ {
		fut, err := f.js.PublishMsgAsync(&nats.Msg{Subject: "bench.js", Data: f.payload})
		if err != nil {
			failed.Add(1)
			continue
		}
		wg.Go(func() {
			select {
			case <-fut.Ok():
				acked.Add(1)
			case <-fut.Err():
				failed.Add(1)
			}
		})
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
	}
	wg.Wait()
	took := time.Since(t0)
	r := benchRow{Name: rowJSAsync, InFlight: inflight, Ops: acked.Load(), Errors: failed.Load(), Seconds: benchRound(took.Seconds())}
	r.OpsPerSec = benchRound(float64(r.Ops) / took.Seconds())
	return r
}

func (f *natsFixture) close() {
	if f.js != nil {
		f.js.CleanupPublisher()
	}
	for _, nc := range []*nats.Conn{f.nc, f.resp} {
		if nc != nil {
			nc.Close()
		}
	}
	natsembed.Shutdown(f.srv)
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

// raftFixture is a bare Raft cluster: the coordinator's bbolt log store and Raft
// settings, Raft's in-memory transport, and an FSM that only counts, so that what is
// measured is replication and fsync.
type raftFixture struct {
	dir     string
	rafts   []*raft.Raft
	stores  []*coordinator.BoltStore
	leader  atomic.Pointer[raft.Raft]
	payload []byte
}

// countFSM is the trivial FSM of the Raft floor.
type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any { return f.n.Add(1) }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("bench: no snapshots")
}
func (f *countFSM) Restore(io.ReadCloser) error { return errors.New("bench: no snapshots") }

func startRaftFixture(nodes int) (_ *raftFixture, err error) {
	f := &raftFixture{payload: make([]byte, 256)}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.dir, err = os.MkdirTemp("", "shardmatch-bench-raft-"); err != nil {
		return f, err
	}
	var peers []raft.Server
	trans := make([]*raft.InmemTransport, nodes)
	for i := range trans {
		addr := raft.ServerAddress(fmt.Sprintf("r%d", i+1))
		_, trans[i] = raft.NewInmemTransport(addr)
		peers = append(peers, raft.Server{ID: raft.ServerID(addr), Address: addr})
	}
	for i, a := range trans {
		for j, b := range trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	for i := range trans {
		st, err := coordinator.OpenBoltStore(filepath.Join(f.dir, fmt.Sprintf("r%d.db", i+1)))
		if err != nil {
			return f, err
		}
		f.stores = append(f.stores, st)
		c := raft.DefaultConfig()
		c.LocalID = peers[i].ID
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = devHeartbeat, devHeartbeat, devHeartbeat/2
		c.MaxAppendEntries, c.BatchApplyCh = 256, true
		c.Logger = hclog.NewNullLogger()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(c, st, st, snaps, trans[i], raft.Configuration{Servers: peers}); err != nil {
			return f, err
		}
		r, err := raft.NewRaft(c, &countFSM{}, st, st, snaps, trans[i])
		if err != nil {
			return f, err
		}
		f.rafts = append(f.rafts, r)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, r := range f.rafts {
			if r.State() == raft.Leader {
				f.leader.Store(r)
				return f, nil
			}
		}
	}
	return f, errors.New("bench: raft elected no leader in 10s")
}

// apply is one Raft apply on the leader, waiting until it is committed and applied.
func (f *raftFixture) apply(context.Context) error {
	return f.leader.Load().Apply(f.payload, 5*time.Second).Error()
}

func (f *raftFixture) close() {
	for _, r := range f.rafts {
		_ = r.Shutdown().Error()
	}
	for _, s := range f.stores {
		_ = s.Close()
	}
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}
