package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// benchRow is one measurement. Latencies are in microseconds; 0 where not measured.
// A closed-loop row keeps InFlight operations going; an open-loop row (OpenLoop set,
// InFlight 0) offers them at a rate, and its latencies count from each one's due time.
type benchRow struct {
	Name      string  `json:"name"`
	InFlight  int     `json:"in_flight"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_s"`
	P50Us     float64 `json:"p50_us"`
	P99Us     float64 `json:"p99_us"`
	P999Us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	// Policy: every proposal of the row was evaluated by the default policy bundle.
	Policy bool `json:"policy,omitempty"`
	// LeaderChanges counts the elections the match rows saw (none were provoked: on a
	// saturated machine a leader can miss its heartbeats, and the row then measures a
	// failover too).
	LeaderChanges int            `json:"leader_changes,omitempty"`
	OpenLoop      *openLoopStats `json:"open_loop,omitempty"`
}

// benchRatio relates a match measurement to the floors it is built from.
type benchRatio struct {
	Name    string  `json:"name"`
	Formula string  `json:"formula"`
	Value   float64 `json:"value"`
}

// benchReport is what `coordinator bench --json` writes.
type benchReport struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	CPUs      int    `json:"cpus"`
	Transport string `json:"transport"`
	Nodes     int    `json:"nodes"`
	Shards    int    `json:"shards"`
	// Policy is --policy: off, on or both (each match row without, then with).
	Policy   string           `json:"policy"`
	Rows     []benchRow       `json:"rows"`
	Ratios   []benchRatio     `json:"ratios"`
	Failover []failoverResult `json:"failover,omitempty"`
}

// Row names: the ratios find their inputs by them.
const (
	rowNATSReq     = "nats request-reply"
	rowJSSync      = "jetstream publish sync (file)"
	rowJSAsync     = "jetstream publish async (file)"
	rowRaft        = "raft apply (bbolt, inmem transport)"
	rowMatch       = "match over NATS (2 shards)"
	rowMatchSecure = "match over NATS (2 shards), secure"
	rowOpenLoop    = ", open loop" // suffix of the open-loop rows' names
	rowPolicy      = ", policy"    // suffix of the rows with the policy on
	natsFanout     = 64            // in-flight level of the NATS request-reply floor
	msgsPerMatch   = 12            // NATS messages of one 2-shard match, end to end
	asyncInFlight  = 4096
)

// runBench runs `coordinator bench` with options o.
func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) int {
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
		Nodes: o.nodes, Shards: o.shards, Policy: o.policyMode}
	add := func(r benchRow) {
		if r.OpenLoop != nil {
			fmt.Fprintf(progress, "coordinator bench: %-46s %6g/s offered: %7.0f commits/s  p50 %s  p99 %s  p99.9 %s  (%d errors, %d never answered, %d leader changes)\n",
				r.Name, r.OpenLoop.OfferedPerSec, r.OpsPerSec, fmtUs(r.P50Us), fmtUs(r.P99Us), fmtUs(r.P999Us), r.Errors, r.OpenLoop.Unanswered, r.LeaderChanges)
			if e := r.OpenLoop.FirstError; e != "" {
				fmt.Fprintf(progress, "coordinator bench:   first error: %s\n", e)
			}
		} else {
			fmt.Fprintf(progress, "coordinator bench: %-46s %4d in flight: %9.0f ops/s  p50 %8.1fµs  p99 %8.1fµs  (%d errors, %d leader changes)\n",
				r.Name, r.InFlight, r.OpsPerSec, r.P50Us, r.P99Us, r.Errors, r.LeaderChanges)
		}
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
	// matchRow starts a fresh stack and measures one match row on it.
	matchRow := func(secure, policy bool, run func(*benchStack, string) benchRow, suffix string) error {
		so := o
		so.policy = policy
		st, err := startBenchStack(ctx, so, secure)
		if err != nil {
			return err
		}
		defer st.close()
		changes := st.watchLeaders()
		r := run(st, matchRowName(secure, policy, suffix))
		r.Policy, r.LeaderChanges = policy, changes()
		add(r)
		return nil
	}
	if o.closed {
		for _, k := range []int{1, o.inflight} {
			for _, secure := range []bool{false, true} {
				for _, policy := range o.policies() {
					if secure && !o.secure {
						continue
					}
					if err := matchRow(secure, policy, func(st *benchStack, name string) benchRow {
						return measure(ctx, name, k, o.duration, o.count, st.proposeFresh)
					}, ""); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	for _, rate := range o.rates {
		for _, policy := range o.policies() {
			if err := matchRow(false, policy, func(st *benchStack, name string) benchRow {
				l := newOpenLoop(o, rate, o.duration)
				return openLoopRow(name, l, o.arrivals, l.run(ctx, st.proposeFresh))
			}, rowOpenLoop); err != nil {
				return nil, err
			}
		}
	}
	for _, mode := range o.failoverModes {
		if o.failover == 0 || ctx.Err() != nil {
			break
		}
		r, err := benchFailover(ctx, o, mode, progress)
		if err != nil {
			return nil, err
		}
		rep.Failover = append(rep.Failover, r)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.ratios(o.inflight)
	return rep, nil
}

// matchRowName names a match row: rowMatch, then ", secure", the suffix (", open
// loop") and ", policy" as they apply.
func matchRowName(secure, policy bool, suffix string) string {
	name := rowMatch
	if secure {
		name = rowMatchSecure
	}
	name += suffix
	if policy {
		name += rowPolicy
	}
	return name
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
		r.P50Us, r.P99Us, r.P999Us, r.MaxUs = q(0.5), q(0.99), q(0.999), q(1)
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
// The match rows compared are the plain ones, or with --policy=on the policy ones.
func (r *benchReport) ratios(sat int) {
	onlyPolicy := r.Policy == policyOn
	m1, ok1 := r.row(matchRowName(false, onlyPolicy, ""), 1)
	mN, okN := r.row(matchRowName(false, onlyPolicy, ""), sat)
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
	s1, oks1 := r.row(matchRowName(true, onlyPolicy, ""), 1)
	sN, oksN := r.row(matchRowName(true, onlyPolicy, ""), sat)
	add(ok1 && oks1, "security latency", "secure match p50 @1 / match p50 @1", s1.P50Us, m1.P50Us)
	add(okN && oksN, "security throughput", fmt.Sprintf("secure match/s @%d / match/s @%d", sat, sat), sN.OpsPerSec, mN.OpsPerSec)
	if !onlyPolicy {
		p1, okp1 := r.row(rowMatch+rowPolicy, 1)
		pN, okpN := r.row(rowMatch+rowPolicy, sat)
		add(ok1 && okp1, "policy latency", "match, policy p50 @1 / match p50 @1", p1.P50Us, m1.P50Us)
		add(okN && okpN, "policy throughput", fmt.Sprintf("match, policy/s @%d / match/s @%d", sat, sat), pN.OpsPerSec, mN.OpsPerSec)
	}
}

// writeTable prints the rows and ratios for people.
func (r *benchReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "coordinator bench: %s/%s, %d CPUs, %d coordinators, %d shards, policy %s\n", r.GOOS, r.GOARCH, r.CPUs, r.Nodes, r.Shards, r.Policy)
	var closed, open []benchRow
	for _, x := range r.Rows {
		if x.OpenLoop != nil {
			open = append(open, x)
		} else {
			closed = append(closed, x)
		}
	}
	if len(closed) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measurement\tin flight\tops/s\tp50\tp99\terrors\t")
		for _, x := range closed {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t\n", x.Name, x.InFlight, x.OpsPerSec, fmtUs(x.P50Us), fmtUs(x.P99Us), x.Errors)
		}
		_ = tw.Flush()
		for _, x := range closed {
			if x.LeaderChanges > 0 {
				fmt.Fprintf(w, "note: the leader changed %d times during %q @%d (unprovoked: the row includes a failover)\n",
					x.LeaderChanges, x.Name, x.InFlight)
			}
		}
	}
	if len(open) > 0 {
		fmt.Fprintf(w, "\nopen loop (%s arrivals; latency from each proposal's due time; errors: aborted, failed, unknown outcome, dropped):\n", open[0].OpenLoop.Arrivals)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "measurement\toffered/s\tcommits/s\tp50\tp99\tp99.9\tmax\tpeak outstanding\terrors\tnever answered\tleader changes\t")
		for _, x := range open {
			fmt.Fprintf(tw, "%s\t%g\t%.0f\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t\n", x.Name, x.OpenLoop.OfferedPerSec, x.OpsPerSec,
				fmtUs(x.P50Us), fmtUs(x.P99Us), fmtUs(x.P999Us), fmtUs(x.MaxUs), x.OpenLoop.PeakOutstanding, x.Errors, x.OpenLoop.Unanswered,
				x.LeaderChanges)
		}
		_ = tw.Flush()
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios:")
		for _, x := range r.Ratios {
			fmt.Fprintf(w, "  %-20s %7.2f   %s\n", x.Name, x.Value, x.Formula)
		}
	}
	writeFailover(w, r.Failover)
}

// fmtUs prints microseconds for people; "-" for not measured.
func fmtUs(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "µs"
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

// watchLeaders counts leadership changes from now until the returned function is
// called, which returns the count: each time a node is seen leading in a higher Raft
// term than the last leader seen. The leader of now is read before it returns.
func (b *benchStack) watchLeaders() func() int {
	var term uint64 // the highest term a leader was seen in
	changes := 0
	scan := func() {
		for i := 0; i < b.lc.Size(); i++ {
			if n := b.lc.Node(i); n != nil && n.IsLeader() {
				if t := n.Raft().CurrentTerm(); t > term {
					if term != 0 {
						changes++
					}
					term = t
				}
			}
		}
	}
	scan()
	stop, done := make(chan struct{}), make(chan int, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				scan()
				done <- changes
				return
			case <-tick.C:
				scan()
			}
		}
	}()
	return func() int {
		close(stop)
		return <-done
	}
}

// proposeFresh runs one 1-vs-1 match between fresh players of two shards, so that no
// two proposals contend, and fails unless it commits (errAborted if it was decided
// otherwise).
func (b *benchStack) proposeFresh(ctx context.Context) error {
	return decisionErr(b.propose(ctx))
}

// decisionErr is nil for a committed decision, errAborted for another one, else err.
func decisionErr(d *smv1.Decision, err error) error {
	if err != nil {
		return err
	}
	if d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		return abortedError{d.GetReason()}
	}
	return nil
}

// abortedError is a proposal decided other than COMMITTED; errors.Is(err, errAborted).
type abortedError struct{ reason smv1.Reason }

func (e abortedError) Error() string        { return errAborted.Error() + ": " + e.reason.String() }
func (e abortedError) Is(target error) bool { return target == errAborted }

// propose runs one 1-vs-1 match between fresh players of two shards and returns its
// decision.
func (b *benchStack) propose(ctx context.Context) (*smv1.Decision, error) {
	n := b.seq.Add(1)
	k := len(b.shards)
	team := func(side string, shard int) *smv1.Team {
		id := "p" + strconv.FormatUint(n, 36) + side
		return &smv1.Team{Players: []*smv1.Player{{PlayerId: id, ShardId: b.shards[shard].id,
			Attributes: &smv1.PlayerAttributes{Mmr: 1500, Region: b.shards[shard].region,
				LatencyMs: map[string]int32{"eu-west": 40}}}}}
	}
	// A "duel" of the default policy bundle that every rule admits (a mode it knows,
	// an offered region, MMR spread 0, latency under its limit), so that rows with the
	// policy measure its evaluation and still commit.
	p := &smv1.Proposal{ProposalId: "bench-" + strconv.FormatUint(n, 36), Mode: "duel", MatchTtlMs: time.Hour.Milliseconds(),
		Metadata: map[string]string{"region": "eu-west"}, Teams: []*smv1.Team{team("a", int(n)%k), team("b", int(n+1)%k)}}
	return b.cli.Propose(ctx, p)
}
