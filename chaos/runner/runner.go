package runner

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/netns"
	"github.com/shardmatch/shardmatch/chaos/report"
	"github.com/shardmatch/shardmatch/chaos/workload"
	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// Result is what one run found.
type Result struct {
	Summary   report.Summary
	ReportDir string
	// Errors are faults that could not be injected or healed; a run with any is not
	// a valid experiment, whatever its verdict.
	Errors []error
}

// Run runs cfg.Scenario once: it brings the deployment up, drives the workload while
// injecting the faults, heals everything, waits for the system to settle, checks the
// history and writes the report. It tears everything down before returning, also
// when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Scenario == nil || cfg.ReportDir == "" {
		return nil, fmt.Errorf("%w: Scenario and ReportDir are required", ErrConfig)
	}
	if os.Geteuid() != 0 {
		return nil, netns.ErrNotRoot
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc := cfg.Scenario
	work := filepath.Join(cfg.ReportDir, "work")
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if err := cfg.binaries(work); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("%05x", os.Getpid()&0xfffff)
	}
	if _, err := netns.Sweep(ctx, cfg.Prefix); err != nil {
		log.Warn("sweep", "err", err)
	}
	nw, err := netns.New(ctx, netns.Config{Prefix: cfg.Prefix, Logger: log})
	if err != nil {
		return nil, err
	}
	epoch := time.Now().Round(0) // wall clock only: every process computes the same way
	d := &deployment{cfg: &cfg, sc: sc, log: log, net: nw, work: work, histDir: filepath.Join(work, "history"),
		epoch: epoch, http: &http.Client{Timeout: 3 * time.Second}}
	defer d.stop()
	now := func() time.Duration { return time.Now().Round(0).Sub(epoch) }

	started := time.Now()
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	rec := history.NewRecorder(now, sc.Topology.Rho)
	nopts := []nats.Option{nats.Name("chaos-workload"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
	if d.sec != nil {
		auth, err := d.sec.workloadOptions()
		if err != nil {
			return nil, fmt.Errorf("%w: workload credentials: %v", ErrSetup, err)
		}
		nopts = append(nopts, auth...)
	}
	nc, err := nats.Connect(d.natsURL(), nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: workload NATS connection: %v", ErrSetup, err)
	}
	defer nc.Close()
	cli, err := client.New(client.Config{Conn: nc, Logger: log})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	drv, err := d.driver(&workload.Recording{Inner: cli, Rec: rec})
	if err != nil {
		return nil, err
	}

	// The workload and the fault schedule run for the scenario's duration.
	in := newInjector(d, cfg.Seed, now)
	wctx, stopWork := context.WithTimeout(ctx, time.Duration(sc.Duration))
	defer stopWork()
	start := now()
	var wg sync.WaitGroup
	wg.Add(2)
	driverDone := make(chan struct{})
	go func() { defer wg.Done(); defer close(driverDone); _ = drv.Run(wctx) }()
	go func() { defer wg.Done(); in.run(wctx, start, sc.Faults) }()
	stopProgress := d.progress(ctx, cfg.Progress, drv, in, start)
	<-wctx.Done()
	workloadEnd := now()
	if ctx.Err() != nil {
		stopProgress()
		wg.Wait()
		return nil, ctx.Err()
	}
	// Heal everything; the proposals in flight then finish and the hosts release.
	healErr := in.healAll(context.WithoutCancel(ctx))
	lastHeal := now()
	wg.Wait()
	stopProgress()

	settleCtx, cancelSettle := context.WithTimeout(ctx, max(time.Duration(sc.Settle), settleMinimum))
	final, settled := d.settle(settleCtx)
	cancelSettle()
	settleTook := now() - lastHeal
	crashed := d.deadProcs()

	shardEvs, leaseEvs, err := collect.ReadDir(d.histDir)
	if err != nil {
		return nil, fmt.Errorf("runner: read the processes' history: %w", err)
	}
	h := rec.History()
	h.ShardEvents, h.LeaseEvents, h.Final, h.Settled = shardEvs, leaseEvs, final, settled
	checked := history.Check(h)

	in.mu.Lock()
	errs := append([]error(nil), in.errs...)
	windows := append([]report.FaultWindow(nil), in.windows...)
	in.mu.Unlock()
	if healErr != nil {
		errs = append(errs, healErr)
	}
	var heals []time.Duration
	for _, w := range windows {
		if w.End > 0 {
			heals = append(heals, w.End)
		}
	}
	live := resumeChecks(h, heals, workloadEnd, time.Duration(sc.Checks.ResumeWithin))
	if sc.Checks.TerminateWithin > 0 {
		live = append(live, terminationCheck(settled, settleTook, time.Duration(sc.Checks.TerminateWithin)))
	}
	live = append(live, crashCheck(crashed))
	extra := map[string]any{"workload_end_s": workloadEnd.Seconds(), "settle_s": settleTook.Seconds()}
	if sc.Checks.MinCommitRatio > 0 {
		lr, ratio := ratioCheck(h, sc.Checks.MinCommitRatio)
		live = append(live, lr)
		extra["commit_ratio"] = ratio
	}
	for _, e := range errs {
		live = append(live, report.LivenessResult{Name: "fault injection", Pass: false, Detail: e.Error()})
	}
	run := &report.Run{Scenario: sc.Name, Seed: cfg.Seed, Secure: cfg.Secure, Started: started, Duration: time.Since(started),
		Faults: windows, History: h, Check: checked, Liveness: live, Extra: extra, Expect: sc.Expect.Violations}
	sum, err := report.Write(cfg.ReportDir, run)
	if err != nil {
		return nil, err
	}
	res := &Result{Summary: sum, ReportDir: cfg.ReportDir, Errors: errs}
	if sum.Pass && len(errs) == 0 && !cfg.KeepWork {
		d.stop()
		_ = os.RemoveAll(work)
	}
	return res, nil
}

// driver builds the load driver over stand-in worlds of the shards' players (the
// players' ids and attributes are a pure function of seed, shard and index).
func (d *deployment) driver(p shardsvc.Proposer) (*shardsvc.LoadGen, error) {
	w := d.sc.Workload
	clk := clock.NewReal()
	var worlds []*shardsvc.World
	for _, s := range d.shards {
		wc := shardsvc.DefaultWorldConfig()
		wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed =
			s.name, "eu-west", d.sc.Topology.PlayersPerShard, time.Duration(w.MatchTTL), clk, d.cfg.Seed
		if w.HotPlayers > 0 {
			wc.Regulars = w.HotPlayers
		}
		wc.AlwaysAvailable = d.sc.Checks.MinCommitRatio > 0 // as the real shards are then
		world, err := shardsvc.NewWorld(wc)
		if err != nil {
			return nil, err
		}
		worlds = append(worlds, world)
	}
	dc := shardsvc.DefaultLoadGenConfig()
	dc.Proposer, dc.Worlds, dc.Clock, dc.Seed = p, worlds, clk, d.cfg.Seed
	dc.Rate, dc.MaxInFlight, dc.HotShare, dc.ViolationShare = w.Rate, w.InFlight, w.HotShare, 0
	dc.MatchTTL, dc.AbandonShare, dc.ProposeTimeout = time.Duration(w.MatchTTL), w.AbandonShare, proposeTimeout
	// The real shards learn that a match ended only when its TTL runs out.
	dc.ReuseAfter = time.Duration(w.MatchTTL) + 500*time.Millisecond
	dc.IDPrefix = fmt.Sprintf("chaos-%d-%x", d.cfg.Seed, d.epoch.UnixNano()&0xffffff)
	// A host renews every RenewEvery until MatchLength has passed, then releases; with
	// RenewEvery 0 it never renews: it releases after MatchLength (after the lease
	// expired, if MatchLength is past the TTL).
	dc.RenewEvery, dc.MatchLength = time.Duration(w.RenewEvery), max(time.Duration(w.MatchLength), time.Millisecond)
	if w.RenewEvery <= 0 {
		dc.RenewEvery = dc.MatchLength
	}
	shapes, err := matchShapes(w.MatchSize)
	if err != nil {
		return nil, err
	}
	dc.Shapes = shapes
	return shardsvc.NewLoadGen(dc)
}

// matchShapes are the match formats for a scenario's match size, within the limits of
// the default policy bundle's modes: 0 is the reference mix, 2 duels, 10 5v5s, any
// other size a raid (one team, at most half of it from one shard).
func matchShapes(size int) ([]shardsvc.Shape, error) {
	def := shardsvc.DefaultShapes()
	switch size {
	case 0:
		return def, nil
	case 2, 10:
		for _, s := range def {
			if s.Teams*s.TeamSize == size {
				s.Weight = 1
				return []shardsvc.Shape{s}, nil
			}
		}
	}
	if size < 3 {
		return nil, fmt.Errorf("%w: match_size %d", ErrConfig, size)
	}
	return []shardsvc.Shape{{Mode: "raid", Weight: 1, Teams: 1, TeamSize: size, MaxLatencyMs: 150, MaxShardShare: 0.5}}, nil
}

// settle polls every coordinator and shard until the run has converged (see
// converged) and returns the final state of that poll. If ctx ends first it
// returns the last state it could read and false.
func (d *deployment) settle(ctx context.Context) (history.Final, bool) {
	var last history.Final
	var prevMax uint64
	for {
		f, complete := d.poll(ctx)
		if f.Nodes != nil {
			last = f
		}
		if complete {
			var ok bool
			if prevMax, ok = history.Converged(f, prevMax); ok {
				return f, true
			}
		}
		select {
		case <-ctx.Done():
			// One last read without the deadline, so the report has a state.
			if f, _ := d.poll(context.Background()); f.Nodes != nil {
				last = f
			}
			return last, false
		case <-time.After(pollEvery):
		}
	}
}

// poll reads every coordinator's and every shard's final state, all at once
// (so that the nodes are read as close together as possible). complete is
// false if any read failed.
func (d *deployment) poll(ctx context.Context) (f history.Final, complete bool) {
	f = history.Final{Nodes: map[string]history.NodeFinal{}, Shards: map[string]history.ShardFinal{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, c := range d.coords {
		wg.Go(func() {
			if nf, err := (collect.Fetcher{HTTP: d.http}).NodeFinal(ctx, c.admin); err == nil {
				mu.Lock()
				f.Nodes[c.name] = nf
				mu.Unlock()
			}
		})
	}
	for _, s := range d.shards {
		wg.Go(func() {
			if sf, err := (collect.Fetcher{HTTP: d.http}).ShardFinal(ctx, s.admin); err == nil {
				mu.Lock()
				f.Shards[s.name] = sf
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return f, len(f.Nodes) == len(d.coords) && len(f.Shards) == len(d.shards)
}
