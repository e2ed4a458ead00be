package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/workload"
	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// LoadConfig configures the proposers' load: an open loop through the client SDK.
type LoadConfig struct {
	// NATSURLs are dialled by the test process (the root namespace).
	NATSURLs []string
	// Shards are the shard pods whose players are matched; their worlds are rebuilt
	// from their flags (--id, --players, --seed, --region, --match-ttl,
	// --always-available, or the SHARDSVC_* variables).
	Shards []*PodPlan
	// Rate is the offered proposals per second; MaxInFlight bounds the proposals
	// awaiting a decision (beyond it a proposal is shed and counted, not queued).
	Rate        float64
	MaxInFlight int
	// RampUp is how long the load takes to rise from a tenth of Rate to Rate.
	RampUp time.Duration
	Seed   int64
	// Epoch is the zero of the history's times (the coordinators' --history-epoch).
	Epoch time.Time
	// MatchLength is how long a committed match is hosted before it is released.
	MatchLength time.Duration
	// Creds, if set, is a NATS credentials file (`coordinator nats-auth user --role
	// proposer`): the load connects as that user, with replies in its own inbox
	// _INBOX.<user name>, from which the client takes its proposer identity.
	Creds  string
	Logger *slog.Logger
}

// Load drives proposals until Stop and records every call in a history.
type Load struct {
	Rec   *history.Recorder
	Epoch time.Time

	drv    *shardsvc.LoadGen
	nc     *nats.Conn
	cli    *client.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// Now is the history's time now.
func (l *Load) Now() time.Duration { return time.Since(l.Epoch) }

// Identity is the proposer identity the load proposes as ("" for none).
func (l *Load) Identity() string { return l.cli.Identity() }

// Stats are the driver's counters.
func (l *Load) Stats() shardsvc.Stats { return l.drv.Stats() }

// StartLoad connects to NATS and starts proposing.
func StartLoad(cfg LoadConfig) (*Load, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{nats.Name("e2e-load"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
	if cfg.Creds != "" {
		co, err := config.CredsOptions(cfg.Creds)
		if err != nil {
			return nil, fmt.Errorf("e2e: load: %w", err)
		}
		opts = append(opts, co...)
	}
	nc, err := nats.Connect(strings.Join(cfg.NATSURLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("e2e: load: nats: %w", err)
	}
	cli, err := client.New(client.Config{Conn: nc, Logger: log})
	if err != nil {
		nc.Close()
		return nil, err
	}
	l := &Load{Epoch: cfg.Epoch, nc: nc, cli: cli, done: make(chan struct{})}
	l.Rec = history.NewRecorder(l.Now, 0.01)
	clk := clock.NewReal()
	var worlds []*shardsvc.World
	var ttl time.Duration
	for _, sp := range cfg.Shards {
		wc, err := worldConfig(sp)
		if err != nil {
			l.close()
			return nil, err
		}
		wc.Clock = clk
		ttl = max(ttl, wc.MatchTTL)
		w, err := shardsvc.NewWorld(wc)
		if err != nil {
			l.close()
			return nil, err
		}
		worlds = append(worlds, w)
	}
	dc := shardsvc.DefaultLoadGenConfig()
	dc.Proposer, dc.Worlds, dc.Clock, dc.Seed = &workload.Recording{Inner: cli, Rec: l.Rec}, worlds, clk, cfg.Seed
	dc.Rate, dc.MaxInFlight, dc.HotShare, dc.ViolationShare, dc.AbandonShare = cfg.Rate, cfg.MaxInFlight, 0, 0, 0
	dc.RampUp = cfg.RampUp
	dc.MatchTTL, dc.ProposeTimeout = ttl, 10*time.Second
	dc.MatchLength = max(cfg.MatchLength, time.Millisecond)
	dc.RenewEvery = dc.MatchLength // released after MatchLength, never renewed
	// A shard learns that a released match ended only when its TTL runs out.
	dc.ReuseAfter = ttl + 500*time.Millisecond
	// Proposal ids unique to this load, not only to the run: a second load with the
	// same ids would be answered from the first one's decisions (proposals are
	// idempotent by id) without a match being made, and measure nothing.
	dc.IDPrefix = fmt.Sprintf("e2e-%x", time.Now().UnixNano()&0xffffffffff)
	dc.Logger = log
	// Duels only: the fewest players per match, so the shards' players last.
	for _, s := range shardsvc.DefaultShapes() {
		if s.Teams*s.TeamSize == 2 {
			s.Weight = 1
			dc.Shapes = []shardsvc.Shape{s}
		}
	}
	if l.drv, err = shardsvc.NewLoadGen(dc); err != nil {
		l.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { defer close(l.done); _ = l.drv.Run(ctx) }()
	return l, nil
}

// Stop stops proposing, waits for every proposal in flight to be answered and every
// hosted match to be released, and closes the connection.
func (l *Load) Stop() {
	l.cancel()
	<-l.done
	l.close()
}

func (l *Load) close() {
	if l.cli != nil {
		_ = l.cli.Close()
	}
	l.nc.Close()
}

// worldConfig rebuilds a shard pod's simulated players from its flags.
func worldConfig(sp *PodPlan) (shardsvc.WorldConfig, error) {
	wc := shardsvc.DefaultWorldConfig()
	get := func(flag string) (string, bool) {
		argv := sp.Main.Argv
		for i, a := range argv {
			if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
				return v, true
			}
			if (a == "--"+flag || a == "-"+flag) && i+1 < len(argv) {
				return argv[i+1], true
			}
		}
		return sp.Main.Lookup("SHARDSVC_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")))
	}
	var err error
	wc.ShardID, _ = get("id")
	if wc.ShardID == "" {
		return wc, fmt.Errorf("e2e: shard pod %s: no --id", sp.Name)
	}
	if v, ok := get("region"); ok {
		wc.Region = v
	}
	if v, ok := get("players"); ok {
		if wc.Players, err = strconv.Atoi(v); err != nil {
			return wc, fmt.Errorf("e2e: shard %s: --players %q", sp.Name, v)
		}
	} else {
		wc.Players = 1000
	}
	if v, ok := get("seed"); ok {
		if wc.Seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			return wc, fmt.Errorf("e2e: shard %s: --seed %q", sp.Name, v)
		}
	} else {
		wc.Seed = 1
	}
	if v, ok := get("match-ttl"); ok {
		if wc.MatchTTL, err = time.ParseDuration(v); err != nil {
			return wc, fmt.Errorf("e2e: shard %s: --match-ttl %q", sp.Name, v)
		}
	}
	if v, ok := get("always-available"); ok {
		wc.AlwaysAvailable = v == "" || v == "true" || v == "--always-available"
	} else if slices.Contains(sp.Main.Argv, "--always-available") {
		wc.AlwaysAvailable = true
	}
	return wc, nil
}

// Window is a span of the run on the history's clock.
type Window struct {
	Name     string
	From, To time.Duration
}

// Metrics are what the proposers saw in a window: the proposals invoked in it by
// outcome, the commits answered in it, the longest time without a commit, and the
// latency of the answered proposals.
type Metrics struct {
	Window                       Window
	Proposed, Committed, Aborted int
	Failed, Unknown, NotReturned int
	AbortReasons                 map[string]int
	CommitRate, OfferedRate      float64 // per second
	LongestGap                   time.Duration
	GapEndsAt                    time.Duration // history time the longest gap ended
	P50, P99, Max                time.Duration
}

// String is one line for the test log.
func (m Metrics) String() string {
	return fmt.Sprintf("%-14s %5.1fs offered %6.1f/s committed %6.1f/s (%d/%d) aborted %d %v failed %d unknown %d pending %d | longest commit gap %v (ending at %.1fs) | latency p50 %v p99 %v max %v",
		m.Window.Name, (m.Window.To - m.Window.From).Seconds(), m.OfferedRate, m.CommitRate, m.Committed, m.Proposed,
		m.Aborted, m.AbortReasons, m.Failed, m.Unknown, m.NotReturned, m.LongestGap.Round(time.Millisecond),
		m.GapEndsAt.Seconds(), m.P50.Round(time.Millisecond), m.P99.Round(time.Millisecond), m.Max.Round(time.Millisecond))
}

// Measure computes w's metrics from h's proposals.
func Measure(h *history.History, w Window) Metrics {
	m := Metrics{Window: w, AbortReasons: map[string]int{}}
	var commits []time.Duration
	var lat []time.Duration
	for _, op := range h.Ops {
		if op.Kind != history.OpPropose {
			continue
		}
		if op.Returned && op.Result == history.ResultCommitted && op.Return >= w.From && op.Return <= w.To {
			commits = append(commits, op.Return)
		}
		if op.Invoke < w.From || op.Invoke >= w.To {
			continue
		}
		m.Proposed++
		if !op.Returned {
			m.NotReturned++
			continue
		}
		lat = append(lat, op.Return-op.Invoke)
		switch op.Result {
		case history.ResultCommitted:
			m.Committed++
		case history.ResultAborted:
			m.Aborted++
			m.AbortReasons[op.Reason]++
		case history.ResultFail:
			m.Failed++
		default:
			m.Unknown++
		}
	}
	if d := (w.To - w.From).Seconds(); d > 0 {
		m.CommitRate, m.OfferedRate = float64(len(commits))/d, float64(m.Proposed)/d
	}
	slices.Sort(commits)
	prev := w.From
	for _, c := range append(commits, w.To) {
		if g := c - prev; g > m.LongestGap {
			m.LongestGap, m.GapEndsAt = g, c
		}
		prev = c
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		m.P50, m.P99, m.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	return m
}
