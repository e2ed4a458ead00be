package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// benchOptions are the flags of `coordinator bench`.
type benchOptions struct {
	duration        time.Duration
	count, inflight int
	nodes, shards   int
	jsonOut, log    string
	floors, closed  bool
	tracing         bool
	secure          bool
	// policyMode is --policy: which match rows evaluate the policy (policyOff, policyOn
	// or policyBoth).
	policyMode string
	// policy is whether the stack startBenchStack starts evaluates the policy; bench
	// sets it for each row from policyMode.
	policy bool

	// Open loop (--rate): one row per rate (and per policy setting), each on a fresh stack.
	rates          []float64
	arrivals       string // arrivalsUniform or arrivalsPoisson
	maxOutstanding int
	drain          time.Duration

	// Failover (--failover N): N leader failures under --failover-rate of open-loop load,
	// on a fresh stack for each of failoverModes.
	failover        int
	failoverRate    float64
	failoverModes   []string
	failoverTimeout time.Duration
}

// --policy values.
const (
	policyOff  = "off"
	policyOn   = "on"
	policyBoth = "both"
)

// --arrivals values.
const (
	arrivalsUniform = "uniform"
	arrivalsPoisson = "poisson"
)

// --failover-mode values.
const (
	failoverKill      = "kill"
	failoverStop      = "stop"
	failoverPartition = "partition"
)

// newBenchCmd is `coordinator bench`.
func newBenchCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "bench",
		Short: "Measure matches/s and latency over NATS against the NATS and Raft floors",
		Long: "Measures, in this process and on this machine, its floors (core NATS\n" +
			"request-reply, JetStream publish, 3-node Raft apply on the coordinator's bbolt store) and then\n" +
			"matches through the dev topology over real NATS (3 coordinators, shards that accept every\n" +
			"player, fresh players per proposal: no contention, no denials), at 1 and at --inflight\n" +
			"proposals in flight (closed loop), each without and then with the policy (--policy). Prints a\n" +
			"table with the ratios of matches to their floors.\n\n" +
			"--rate adds open-loop rows: proposals offered at a fixed rate whatever the backlog, each\n" +
			"one's latency counted from the time it was due, so that queueing is not hidden.\n" +
			"--failover N (20 gives a usable spread) fails the leader N times (--failover-mode: kill,\n" +
			"stop, partition) under --failover-rate of open-loop load and reports the time from each\n" +
			"failure to a new leader and to the first match committed through it, with the proposals\n" +
			"lost or left in doubt (the target: none).\n\n" +
			"Every match row runs on a freshly started stack.",
		Example: "  coordinator bench\n  coordinator bench --floors=false --rate 250,500,1000\n" +
			"  coordinator bench --floors=false --closed-loop=false --failover 20",
		Args: cli.NoArgs,
	}, defineBench, nil)
}

func defineBench(fs *flag.FlagSet) legacyRun {
	o := newBenchOptions()
	benchFlags(&o, fs)
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		if code, done := o.check(stderr); done {
			return code
		}
		return runBench(ctx, o, stdout, stderr)
	}
}

// newBenchOptions are bench's defaults that flags do not set.
func newBenchOptions() benchOptions {
	return benchOptions{policyMode: policyBoth, failoverModes: []string{failoverKill}}
}

// benchFlags puts bench's flags on fs.
func benchFlags(o *benchOptions, fs *flag.FlagSet) {
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement (closed-loop and open-loop rows)")
	fs.IntVar(&o.count, "count", 0, "stop each closed-loop measurement after this many operations (0: only --duration)")
	fs.IntVar(&o.inflight, "inflight", 256, "proposals in flight at saturation (also the Raft saturation level)")
	fs.IntVar(&o.nodes, "nodes", 3, "coordinator nodes (and Raft floor nodes)")
	fs.IntVar(&o.shards, "shards", 3, "shards; each match takes one player from two of them")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this `file`")
	fs.Var(policyFlag{&o.policyMode}, "policy",
		"which match rows evaluate the default policy bundle on every proposal: --policy=both measures each\n"+
			"match row without the policy and then with it (the row named \"..., policy\"); --policy (or\n"+
			"--policy=on) only with it; --policy=false (or off) only without. Failover runs with the policy\n"+
			"unless it is off")
	fs.BoolVar(&o.floors, "floors", true, "measure the NATS and Raft floors too")
	fs.BoolVar(&o.closed, "closed-loop", true, "measure closed-loop matches at 1 and --inflight in flight")
	fs.BoolVar(&o.tracing, "tracing", true, "record spans as serve does (the OTEL_* environment applies; no exporter unless it names one)")
	fs.BoolVar(&o.secure, "secure", false, "also measure closed-loop matches on the secured stack (dev --secure: NATS over mutual TLS with JWT auth and per-role credentials, signed and verified commands), each level right after its plain row")
	fs.StringVar(&o.log, "log-level", "error", "log level on stderr: debug, info, warn, error or off")
	fs.Var(rateList{&o.rates}, "rate", "open loop: offer matches at these `rates`, in matches per second, one row each on a fresh\n"+
		"stack, e.g. 500,1000,2500 (default: no open-loop rows)")
	fs.StringVar(&o.arrivals, "arrivals", arrivalsUniform, "open-loop arrival times: uniform (every 1/rate) or poisson (exponential gaps of mean 1/rate)")
	fs.IntVar(&o.maxOutstanding, "max-outstanding", 100000, "open loop: most proposals awaiting an answer at once; arrivals beyond it are dropped and counted as errors")
	fs.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "open loop: after offering stops, how long to wait for outstanding answers; those still outstanding are reported as never answered")
	fs.IntVar(&o.failover, "failover", 0, "fail the leader this many times under load and time each recovery (0: skip; 20 is a usable sample)")
	fs.Float64Var(&o.failoverRate, "failover-rate", 200, "open-loop matches per second offered during --failover")
	fs.Var(modeList{&o.failoverModes}, "failover-mode", "how the leader fails: these `modes`, comma-separated, run in turn, each on a fresh stack:\n"+
		"kill: as kill -9, its NATS connection and Raft transport cut at once, then the node stopped\n"+
		"with no leadership transfer; restarted after each recovery.\n"+
		"stop: Raft cut, then the node shut down as coordinator dev --chaos-kill-leader-every does:\n"+
		"its API server hands the proposals it holds back on the way down; restarted likewise.\n"+
		"partition: its Raft transport cut from the other coordinators; its process and NATS connection\n"+
		"stay up, so it serves as a stale leader until it steps down; healed after each recovery")
	fs.DurationVar(&o.failoverTimeout, "failover-timeout", 30*time.Second, "failover: bound on each wait (steady load before a failure, first commit after it, catch-up after the restart)")
}

// check validates the flags; done means exit with code.
func (o benchOptions) check(stderr io.Writer) (code int, done bool) {
	if o.duration <= 0 || o.count < 0 || o.inflight < 1 || o.nodes < 1 || o.shards < 2 {
		fmt.Fprintln(stderr, "coordinator bench: need --duration > 0, --count >= 0, --inflight >= 1, --nodes >= 1, --shards >= 2")
		return 2, true
	}
	var bad []string
	if o.arrivals != arrivalsUniform && o.arrivals != arrivalsPoisson {
		bad = append(bad, fmt.Sprintf("--arrivals %q: want uniform or poisson", o.arrivals))
	}
	if o.maxOutstanding < 1 {
		bad = append(bad, "--max-outstanding must be >= 1")
	}
	if o.drain <= 0 {
		bad = append(bad, "--drain-timeout must be > 0")
	}
	if o.failover < 0 {
		bad = append(bad, "--failover must be >= 0 (0 skips the failover measurement)")
	}
	if !(o.failoverRate > 0) || math.IsInf(o.failoverRate, 0) {
		bad = append(bad, "--failover-rate must be a finite number > 0")
	}
	if o.failoverTimeout <= 0 {
		bad = append(bad, "--failover-timeout must be > 0")
	}
	if o.failover > 0 && o.nodes < 3 {
		bad = append(bad, "--failover needs --nodes >= 3 (a majority must survive the failed leader)")
	}
	if len(bad) > 0 {
		fmt.Fprintln(stderr, "coordinator bench: "+strings.Join(bad, "; "))
		return 2, true
	}
	return 0, false
}

// policyFlag is --policy. It is a boolean flag as it always was (--policy, --policy=false)
// that also takes "both", its default.
type policyFlag struct{ mode *string }

func (p policyFlag) String() string {
	if p.mode == nil {
		return ""
	}
	return *p.mode
}

func (p policyFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "t", "1", policyOn:
		*p.mode = policyOn
	case "false", "f", "0", policyOff:
		*p.mode = policyOff
	case policyBoth:
		*p.mode = policyBoth
	default:
		return errors.New("want on (true), off (false) or both")
	}
	return nil
}

// IsBoolFlag lets --policy stand alone, meaning on.
func (p policyFlag) IsBoolFlag() bool { return true }

// policies lists the policy settings the match rows run with, in order.
func (o benchOptions) policies() []bool {
	switch o.policyMode {
	case policyOn:
		return []bool{true}
	case policyOff:
		return []bool{false}
	}
	return []bool{false, true}
}

// rateList is --rate: comma-separated rates, each a finite number > 0.
type rateList struct{ rates *[]float64 }

func (r rateList) String() string {
	if r.rates == nil {
		return ""
	}
	var s []string
	for _, x := range *r.rates {
		s = append(s, strconv.FormatFloat(x, 'g', -1, 64))
	}
	return strings.Join(s, ",")
}

func (r rateList) Set(s string) error {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number of matches per second", f)
		}
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("%q: a rate must be a finite number > 0", f)
		}
		out = append(out, x)
	}
	*r.rates = out
	return nil
}

// modeList is --failover-mode: comma-separated failover modes.
type modeList struct{ modes *[]string }

func (m modeList) String() string {
	if m.modes == nil {
		return ""
	}
	return strings.Join(*m.modes, ",")
}

func (m modeList) Set(s string) error {
	var out []string
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case failoverKill, failoverStop, failoverPartition:
			out = append(out, f)
		default:
			return fmt.Errorf("%q: want kill, stop or partition", f)
		}
	}
	*m.modes = out
	return nil
}
