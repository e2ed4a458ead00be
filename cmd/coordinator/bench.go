package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// benchOptions are the flags of `coordinator bench`.
type benchOptions struct {
	duration        time.Duration
	count, inflight int
	nodes, shards   int
	jsonOut, log    string
	policy, floors  bool
	tracing         bool
	secure          bool
}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, int, bool) {
	var o benchOptions
	fs := flag.NewFlagSet("coordinator bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator bench [flags]\n\nMeasures, in this process and on this machine, its floors (core NATS\n"+
			"request-reply, JetStream publish, 3-node Raft apply on the coordinator's bbolt store) and then\n"+
			"matches through the dev topology over real NATS (3 coordinators, shards that accept every\n"+
			"player, fresh players per proposal: no contention, no denials), at 1 and at --inflight\n"+
			"proposals in flight. Prints a table with the ratios of matches to their floors.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement")
	fs.IntVar(&o.count, "count", 0, "stop each measurement after this many operations (0: only --duration)")
	fs.IntVar(&o.inflight, "inflight", 256, "proposals in flight at saturation (also the Raft saturation level)")
	fs.IntVar(&o.nodes, "nodes", 3, "coordinator nodes (and Raft floor nodes)")
	fs.IntVar(&o.shards, "shards", 3, "shards; each match takes one player from two of them")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this `file`")
	fs.BoolVar(&o.policy, "policy", false, "evaluate the default policy bundle on every proposal")
	fs.BoolVar(&o.floors, "floors", true, "measure the NATS and Raft floors too")
	fs.BoolVar(&o.tracing, "tracing", true, "record spans as serve does (the OTEL_* environment applies; no exporter unless it names one)")
	fs.BoolVar(&o.secure, "secure", false, "also measure matches on the secured stack (dev --secure: NATS over mutual TLS with JWT auth and per-role credentials, signed and verified commands), each level right after its plain row")
	fs.StringVar(&o.log, "log-level", "error", "log level on stderr: debug, info, warn, error or off")
	if code, done := parseFlags(fs, args); done {
		return o, code, true
	}
	if o.duration <= 0 || o.count < 0 || o.inflight < 1 || o.nodes < 1 || o.shards < 2 {
		fmt.Fprintln(stderr, "coordinator bench: need --duration > 0, --count >= 0, --inflight >= 1, --nodes >= 1, --shards >= 2")
		return o, 2, true
	}
	return o, 0, false
}

// benchRow is one measurement. Latencies are in microseconds; 0 where not measured.
type benchRow struct {
	Name      string  `json:"name"`
	InFlight  int     `json:"in_flight"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_s"`
	P50Us     float64 `json:"p50_us"`
	P99Us     float64 `json:"p99_us"`
}

// benchRatio relates a match measurement to the floors it is built from.
type benchRatio struct {
	Name    string  `json:"name"`
	Formula string  `json:"formula"`
	Value   float64 `json:"value"`
}

// benchReport is what `coordinator bench --json` writes.
type benchReport struct {
	GOOS      string       `json:"goos"`
	GOARCH    string       `json:"goarch"`
	CPUs      int          `json:"cpus"`
	Transport string       `json:"transport"`
	Nodes     int          `json:"nodes"`
	Shards    int          `json:"shards"`
	Policy    bool         `json:"policy"`
	Rows      []benchRow   `json:"rows"`
	Ratios    []benchRatio `json:"ratios"`
}

// Row names: the ratios find their inputs by them.
const (
	rowNATSReq     = "nats request-reply"
	rowJSSync      = "jetstream publish sync (file)"
	rowJSAsync     = "jetstream publish async (file)"
	rowRaft        = "raft apply (bbolt, inmem transport)"
	rowMatch       = "match over NATS (2 shards)"
	rowMatchSecure = "match over NATS (2 shards), secure"
	natsFanout     = 64 // in-flight level of the NATS request-reply floor
	msgsPerMatch   = 12 // NATS messages of one 2-shard match, end to end
	asyncInFlight  = 4096
)

// runBench implements `coordinator bench`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code, done := parseBenchFlags(args, stderr)
	if done {
		return code
	}
	log, err := newLogger(stderr, o.log)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator bench: %v\n", err)
		return 2
	}
	if o.tracing {
		_, stopTelemetry := startTelemetry(log, "shardmatch-bench", "bench")
		defer stopTelemetry()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator bench: %v\n", err)
		return 1
	}
	rep.writeTable(stdout)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "coordinator bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// bench runs every measurement in turn, each on a freshly started fixture so that
// none runs beside another's background work.
func bench(ctx context.Context, o benchOptions, progress io.Writer) (*benchReport, error) {
	rep := &benchReport{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Transport: transportNATS,
		Nodes: o.nodes, Shards: o.shards, Policy: o.policy}
	add := func(r benchRow) {
		fmt.Fprintf(progress, "coordinator bench: %-38s %4d in flight: %9.0f ops/s  p50 %8.1fµs  p99 %8.1fµs  (%d errors)\n",
			r.Name, r.InFlight, r.OpsPerSec, r.P50Us, r.P99Us, r.Errors)
		rep.Rows = append(rep.Rows, r)
	}
	if o.floors {
		nf, err := startNATSFixture()
		if err != nil {
			return nil, err
		}
		add(measure(ctx, rowNATSReq, 1, o.duration, o.count, nf.request))
		add(measure(ctx, rowNATSReq, natsFanout, o.duration, o.count, nf.request))
		add(measure(ctx, rowJSSync, 1, o.duration, o.count, nf.publish))
		add(nf.publishAsync(ctx, asyncInFlight, o.duration, o.count))
		nf.close()
		rf, err := startRaftFixture(o.nodes)
		if err != nil {
			return nil, err
		}
		add(measure(ctx, rowRaft, 1, o.duration, o.count, rf.apply))
		add(measure(ctx, rowRaft, o.inflight, o.duration, o.count, rf.apply))
		rf.close()
	}
	for _, k := range []int{1, o.inflight} {
		for _, secure := range []bool{false, true} {
			if secure && !o.secure {
				continue
			}
			st, err := startBenchStack(ctx, o, secure)
			if err != nil {
				return nil, err
			}
			name := rowMatch
			if secure {
				name = rowMatchSecure
			}
			add(measure(ctx, name, k, o.duration, o.count, st.proposeFresh))
			st.close()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.ratios(o.inflight)
	return rep, nil
}

// measure runs op from inflight goroutines for d, or until count operations were
// started (count > 0), and reports its rate and latency.
func measure(ctx context.Context, name string, inflight int, d time.Duration, count int, op func(context.Context) error) benchRow {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		started, failed atomic.Uint64
		mu              sync.Mutex
		lat             []time.Duration
		wg              sync.WaitGroup
	)
	t0 := time.Now()
	for range inflight {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil && (count == 0 || started.Add(1) <= uint64(count)) {
				s := time.Now()
				if err := op(ctx); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return newRow(name, inflight, lat, failed.Load(), time.Since(t0))
}

func newRow(name string, inflight int, lat []time.Duration, failed uint64, took time.Duration) benchRow {
	r := benchRow{Name: name, InFlight: inflight, Ops: uint64(len(lat)), Errors: failed, Seconds: benchRound(took.Seconds())}
	if took > 0 {
		r.OpsPerSec = benchRound(float64(len(lat)) / took.Seconds())
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(f float64) float64 { return benchRound(float64(lat[int(f*float64(len(lat)-1))]) / 1e3) }
		r.P50Us, r.P99Us = q(0.5), q(0.99)
	}
	return r
}

func benchRound(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// row finds a measurement by name and in-flight level.
func (r *benchReport) row(name string, inflight int) (benchRow, bool) {
	for _, x := range r.Rows {
		if x.Name == name && x.InFlight == inflight {
			return x, true
		}
	}
	return benchRow{}, false
}

// ratios relates the matches to their floors: a match costs at least one Raft commit
// and two request-reply round trips (prepare/vote, commit/ack), and about 12 messages.
func (r *benchReport) ratios(sat int) {
	m1, ok1 := r.row(rowMatch, 1)
	mN, okN := r.row(rowMatch, sat)
	nats1, okn1 := r.row(rowNATSReq, 1)
	natsN, oknN := r.row(rowNATSReq, natsFanout)
	raft1, okr1 := r.row(rowRaft, 1)
	raftN, okrN := r.row(rowRaft, sat)
	add := func(ok bool, name, formula string, num, den float64) {
		if ok && den > 0 {
			r.Ratios = append(r.Ratios, benchRatio{Name: name, Formula: formula, Value: benchRound(num / den)})
		}
	}
	floor := raft1.P50Us + 2*nats1.P50Us
	add(ok1 && okr1 && okn1, "latency vs floor", "match p50 @1 / (raft p50 @1 + 2 × nats rtt p50 @1)", m1.P50Us, floor)
	add(ok1 && okr1, "latency vs raft", "match p50 @1 / raft p50 @1", m1.P50Us, raft1.P50Us)
	add(okN && okrN, "throughput vs raft",
		fmt.Sprintf("raft applies/s @%d / match/s @%d (raft entries' worth per match)", sat, sat), raftN.OpsPerSec, mN.OpsPerSec)
	add(okN && oknN, "throughput vs nats",
		fmt.Sprintf("nats msgs/s @%d / (%d × match/s @%d)", natsFanout, msgsPerMatch, sat), natsN.OpsPerSec, msgsPerMatch*mN.OpsPerSec)
	add(ok1 && okN, "pipelining gain", fmt.Sprintf("match/s @%d / match/s @1", sat), mN.OpsPerSec, m1.OpsPerSec)
	s1, oks1 := r.row(rowMatchSecure, 1)
	sN, oksN := r.row(rowMatchSecure, sat)
	add(ok1 && oks1, "security latency", "secure match p50 @1 / match p50 @1", s1.P50Us, m1.P50Us)
	add(okN && oksN, "security throughput", fmt.Sprintf("secure match/s @%d / match/s @%d", sat, sat), sN.OpsPerSec, mN.OpsPerSec)
}

// writeTable prints the rows and ratios for people.
func (r *benchReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "coordinator bench: %s/%s, %d CPUs, %d coordinators, %d shards, policy %v\n\n", r.GOOS, r.GOARCH, r.CPUs, r.Nodes, r.Shards, r.Policy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tin flight\tops/s\tp50\tp99\terrors\t")
	us := func(v float64) string {
		if v <= 0 {
			return "-"
		}
		if v >= 1000 {
			return strconv.FormatFloat(v/1000, 'f', 2, 64) + "ms"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + "µs"
	}
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t\n", x.Name, x.InFlight, x.OpsPerSec, us(x.P50Us), us(x.P99Us), x.Errors)
	}
	_ = tw.Flush()
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios:")
		for _, x := range r.Ratios {
			fmt.Fprintf(w, "  %-20s %7.2f   %s\n", x.Name, x.Value, x.Formula)
		}
	}
}

// benchStack is the dev topology for matches: NATS, the coordinators, shards that
// accept every player, and a client.
type benchStack struct {
	*devStack
	seq atomic.Uint64
}

func startBenchStack(ctx context.Context, o benchOptions, secure bool) (*benchStack, error) {
	log, err := newLogger(os.Stderr, o.log)
	if err != nil {
		return nil, err
	}
	st, err := startDevStack(ctx, devOptions{transport: transportNATS, nodes: o.nodes, shards: o.shards, players: 1000,
		noPolicy: !o.policy, acceptAll: true, secure: secure, policyTimeout: time.Second, matchTTL: time.Hour, seed: 1}, log)
	if err != nil {
		return nil, err
	}
	return &benchStack{devStack: st}, nil
}

// proposeFresh runs one 1-vs-1 match between fresh players of two shards, so that no
// two proposals contend, and fails unless it commits.
func (b *benchStack) proposeFresh(ctx context.Context) error {
	n := b.seq.Add(1)
	k := len(b.shards)
	team := func(side string, shard int) *smv1.Team {
		id := "p" + strconv.FormatUint(n, 36) + side
		return &smv1.Team{Players: []*smv1.Player{{PlayerId: id, ShardId: b.shards[shard].id,
			Attributes: &smv1.PlayerAttributes{Mmr: 1500, Region: b.shards[shard].region}}}}
	}
	p := &smv1.Proposal{ProposalId: "bench-" + strconv.FormatUint(n, 36), Mode: "1v1", MatchTtlMs: time.Hour.Milliseconds(),
		Metadata: map[string]string{"region": "eu-west"}, Teams: []*smv1.Team{team("a", int(n)%k), team("b", int(n+1)%k)}}
	d, err := b.cli.Propose(ctx, p)
	if err != nil {
		return err
	}
	if d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		return errors.New("bench: proposal aborted: " + d.GetReason().String())
	}
	return nil
}

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
	if f.srv, err = natsutil.StartEmbedded(natsutil.EmbeddedConfig{StoreDir: f.dir, ServerName: "shardmatch-bench"}); err != nil {
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
	natsutil.Shutdown(f.srv)
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
