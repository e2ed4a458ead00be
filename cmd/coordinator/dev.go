package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// devOptions are the flags of `coordinator dev`.
type devOptions struct {
	duration, settleTimeout, matchTTL, killEvery, policyTimeout time.Duration
	rate, hot, violations                                       float64
	inflight, nodes, shards, players                            int
	seed                                                        int64
	data, policyBundle, summaryJSON, logLevel, transport        string
	// adminAddr is where the first node's admin API and console listen, the others on
	// the next ports ("": none).
	adminAddr string
	noPolicy  bool
	// secure runs NATS in operator (JWT) mode with per-role credentials and signs
	// commands (devSecurity).
	secure bool
	// acceptAll gives the shards a handler that accepts every player instead of a
	// World of simulated players (bench: the protocol alone, no shard rejections).
	acceptAll bool
}

// newDevCmd is `coordinator dev`.
func newDevCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "dev",
		Short: "Run a whole deployment in this process with live status, then audit it",
		Long: "A 3-node coordinator cluster, shards with simulated players, the policy engine and a load\n" +
			"driver, in this process. Stops after --duration or on Ctrl-C, settles, audits every shard and\n" +
			"node, prints a summary and exits 0 if the audit is clean, 1 if not.",
		Example: "  coordinator dev\n  coordinator dev --duration 20s --summary-json /tmp/summary.json\n  coordinator dev --secure --duration 20s",
		Args:    cli.NoArgs,
	}, defineDev, nil)
}

func defineDev(fs *flag.FlagSet) legacyRun {
	var o devOptions
	devFlags(&o, fs)
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		if code, done := o.check(stderr); done {
			return code
		}
		return runDev(ctx, o, stdout, stderr)
	}
}

// devFlags puts dev's flags on fs.
func devFlags(o *devOptions, fs *flag.FlagSet) {
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	fs.Float64Var(&o.rate, "rate", 200, "target proposals per second")
	fs.IntVar(&o.inflight, "inflight", 64, "most proposals awaiting a decision at once")
	fs.Float64Var(&o.hot, "hot", 0.05, "share of proposals built around a few hot players (forces PLAYER_LEASED)")
	fs.Float64Var(&o.violations, "violations", 0.02, "share of proposals built to break the policy (POLICY_DENIED)")
	fs.DurationVar(&o.matchTTL, "match-ttl", 5*time.Second, "match TTL: matches are renewed every TTL/3, then released")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the players, the load and the network")
	fs.IntVar(&o.nodes, "nodes", 3, "coordinator nodes")
	fs.IntVar(&o.shards, "shards", 3, "shards (s1, s2 in eu-west, s3 in us-east, ...)")
	fs.IntVar(&o.players, "players", 2000, "simulated players per shard")
	fs.StringVar(&o.data, "data", "", "data `directory` for Raft and the shard journals (default: a temp dir removed at exit)")
	fs.StringVar(&o.policyBundle, "policy-bundle", "", "policy bundle `directory`, hot-reloaded (default: the embedded default bundle)")
	fs.BoolVar(&o.noPolicy, "no-policy", false, "admit every proposal without evaluating policy")
	fs.DurationVar(&o.policyTimeout, "policy-timeout", defaultPolicyTimeout, "bound on one policy evaluation")
	fs.StringVar(&o.summaryJSON, "summary-json", "", "also write the summary as JSON to this `file`")
	fs.DurationVar(&o.settleTimeout, "settle-timeout", 30*time.Second, "how long to wait for in-flight transactions to finish before the audit")
	fs.DurationVar(&o.killEvery, "chaos-kill-leader-every", 0, "kill the leader this often and restart it (0: never)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error or off")
	fs.BoolVar(&o.secure, "secure", false, "run as production does: NATS over mutual TLS in JWT operator mode with per-role credentials and subject permissions, commands signed by coordinators and verified by shards (NATS transport only)")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:8080", "the first node's admin API and console (`host:port`; the other nodes "+
		"use the next ports; port 0: any free ones; \"\": none); operator actions need no token in dev")
	fs.StringVar(&o.transport, "transport", transportNATS, "how coordinators, shards and the load driver talk: nats (embedded NATS JetStream) or inmem")
}

// check validates the flags; done means exit with code.
func (o devOptions) check(stderr io.Writer) (code int, done bool) {
	if o.shards < 2 || o.nodes < 1 || o.players < 1 || o.duration < 0 || o.killEvery < 0 {
		fmt.Fprintln(stderr, "coordinator dev: need --shards >= 2, --nodes >= 1, --players >= 1, non-negative durations")
		return 2, true
	}
	if o.transport != transportNATS && o.transport != transportInmem {
		fmt.Fprintf(stderr, "coordinator dev: --transport %q: want nats or inmem\n", o.transport)
		return 2, true
	}
	if o.secure && o.transport != transportNATS {
		fmt.Fprintln(stderr, "coordinator dev: --secure needs --transport nats (it secures NATS)")
		return 2, true
	}
	return 0, false
}

// runDev runs `coordinator dev` with options o.
func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer) int {
	log, err := newLogger(stderr, o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator dev: %v\n", err)
		return 2
	}
	log, stopTelemetry := startTelemetry(log, "shardmatch-dev", "dev")
	defer stopTelemetry()
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	st, err := startDevStack(ctx, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator dev: start: %v\n", err)
		return 1
	}
	defer st.close()
	dc := shardsvc.DefaultLoadGenConfig()
	dc.Proposer, dc.Worlds, dc.Clock, dc.Seed, dc.Logger = st.proposer(), st.worlds(), st.clk, o.seed, log
	dc.Rate, dc.MaxInFlight, dc.HotShare, dc.ViolationShare, dc.MatchTTL = o.rate, o.inflight, o.hot, o.violations, o.matchTTL
	drv, err := shardsvc.NewLoadGen(dc)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator dev: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "coordinator dev: %d coordinators, %d shards × %d players, data in %s; %g proposals/s, %d in flight. Ctrl-C stops.\n",
		o.nodes, o.shards, o.players, st.dir, o.rate, o.inflight)
	if st.sec != nil {
		fmt.Fprintf(stderr, "coordinator dev: secure: NATS JWT auth with per-role credentials in %s, commands signed by %s\n",
			st.sec.dir, st.sec.signer.PublicKey())
		if creds, err := st.sec.auth.WriteUser(st.sec.dir, natsauth.RoleObserver, "you"); err != nil {
			log.Warn("cannot write observer credentials", "err", err)
		} else {
			fmt.Fprintf(stderr, "coordinator dev: NATS JetStream at %s; read the events stream as an observer with --creds %s and inbox prefix _INBOX.observer-you\n",
				st.nats.URL(), creds)
		}
	} else if st.nats != nil {
		fmt.Fprintf(stderr, "coordinator dev: NATS JetStream at %s (try: nats --server %s sub 'sm.v1.events.>')\n", st.nats.URL(), st.nats.URL())
	} else {
		fmt.Fprintln(stderr, "coordinator dev: in-memory participant network (--transport inmem)")
	}
	if st.admin != nil {
		fmt.Fprintf(stderr, "coordinator dev: console at %s/ui/ (admin APIs: %s; try: coordinator status --endpoints %s)\n",
			st.admin.urls[0], strings.Join(st.admin.urls, " "), strings.Join(st.admin.urls, ","))
	}

	runCtx, stopRun := ctx, context.CancelFunc(func() {})
	if o.duration > 0 {
		runCtx, stopRun = context.WithTimeout(ctx, o.duration)
	}
	defer stopRun()
	kills := make(<-chan int)
	if o.killEvery > 0 {
		kills = st.killLeaders(runCtx, o.killEvery, log)
	}
	stopStatus := shardsvc.ShowStatus(stderr, drv, time.Second, isTerminal(stderr), st.leader)
	_ = drv.Run(runCtx) // returns once in-flight proposals are decided and hosted matches released
	stopStatus()
	stopSignals() // from here a second Ctrl-C kills the process
	leaderKills := 0
	if o.killEvery > 0 {
		leaderKills = <-kills
	}

	fmt.Fprintln(stderr, "coordinator dev: load stopped; settling and auditing")
	settled := st.settle(o.settleTimeout)
	in, err := st.auditInput()
	if err != nil {
		fmt.Fprintf(stderr, "coordinator dev: audit: %v\n", err)
		return 1
	}
	sum := shardsvc.NewSummary(drv.Stats(), o.rate, shardsvc.Audit(in), st.leader(), leaderKills, settled)
	sum.WriteText(stdout)
	fmt.Fprintf(stdout, "transport: %s\n", o.transport)
	ds := devSummary{Summary: sum, Transport: o.transport, Secure: st.sec != nil}
	if st.sec != nil {
		var refused uint64
		for _, sh := range st.shards {
			refused += sh.sdk.Stats().SignatureRejected()
		}
		ds.SignatureRejected = refused
		fmt.Fprintf(stdout, "security: NATS mutual TLS and JWT auth with per-role permissions, signed commands (%d refused by the shards)\n", refused)
	}
	if st.pol != nil {
		ps := st.pol.Stats()
		ds.PolicyEvaluations = ps.Evaluations
		ds.PolicyP50Us = float64(ps.Latency.Quantile(0.5).Microseconds())
		ds.PolicyP99Us = float64(ps.Latency.Quantile(0.99).Microseconds())
		fmt.Fprintf(stdout, "policy: %d evaluations in the coordinators, p50 <= %gµs, p99 <= %gµs\n",
			ds.PolicyEvaluations, ds.PolicyP50Us, ds.PolicyP99Us)
	}
	if o.summaryJSON != "" {
		b, _ := json.MarshalIndent(ds, "", "  ")
		if err := os.WriteFile(o.summaryJSON, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "coordinator dev: %v\n", err)
			return 1
		}
	}
	if !sum.Clean {
		return 1
	}
	return 0
}

// devSummary is the JSON `coordinator dev --summary-json` writes: the load run's
// summary and the transport it ran over.
type devSummary struct {
	shardsvc.Summary
	Transport string `json:"transport"`
	// Secure is --secure; SignatureRejected counts commands the shards refused for
	// their signature (0 in a healthy run).
	Secure            bool   `json:"secure"`
	SignatureRejected uint64 `json:"signature_rejected,omitempty"`
	// PolicyEvaluations counts the policy evaluations of the run; PolicyP50Us and
	// PolicyP99Us are upper bounds of their latency quantiles (histogram buckets).
	PolicyEvaluations uint64  `json:"policy_evaluations,omitempty"`
	PolicyP50Us       float64 `json:"policy_p50_us,omitempty"`
	PolicyP99Us       float64 `json:"policy_p99_us,omitempty"`
}

// isTerminal reports whether w is a terminal, where the status line is rewritten in
// place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "off", "none":
		return slog.New(slog.DiscardHandler), nil
	default:
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn, error or off", level)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
