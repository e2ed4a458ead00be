package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// envPrefix starts the environment variable of every shardsvc flag.
const envPrefix = "SHARDSVC"

// options are shardsvc's settings: flags, SHARDSVC_* environment, --config file.
type options struct {
	configFile      string
	id, region      string
	nats            config.NATS
	prefix          string
	journal         string
	players         int
	seed            int64
	adminAddr       string
	logLevel        string
	logFormat       string
	compactEvery    time.Duration
	drainTimeout    time.Duration
	registerTimeout time.Duration
	proposeRate     float64
	peerShards      string
	hot, violations float64
	matchTTL        time.Duration
	inflight        int
	faultInjection  bool
	historyDir      string
	historyEpoch    int64
	alwaysAvailable bool
	verifyKeys      string
	peers           []peer
	// verifier is --command-verify-keys parsed; nil without it (unsigned accepted).
	verifier *cmdsig.Verifier
}

// peer is another shard whose players the load driver may name: "<id>" or
// "<id>:<region>".
type peer struct{ id, region string }

func flags(o *options, stderr io.Writer) (*flag.FlagSet, config.Loader) {
	ld := config.Loader{EnvPrefix: envPrefix}
	fs := flag.NewFlagSet("shardsvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, config.FileFlag, "", "config `file` of `key = value` lines")
	fs.StringVar(&o.id, "id", "", "shard `id`, one NATS token (required); players are <id>-p<NNNNN>")
	fs.StringVar(&o.region, "region", "eu-west", "the players' home `region`")
	o.nats.Register(fs)
	fs.StringVar(&o.prefix, "prefix", natsutil.DefaultPrefix, "NATS subject and stream `prefix`")
	fs.StringVar(&o.journal, "journal", "", "journal `file`: append-only, or an earlier release's bbolt file (default: <id>.journal in the working directory)")
	fs.IntVar(&o.players, "players", 1000, "simulated players")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the players and the load; every shard of a deployment uses the same")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:9090", "`host:port` of /status (JSON) and /metrics (Prometheus); empty: none")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn, error or off")
	fs.StringVar(&o.logFormat, "log-format", "json", "log `format`: json or text")
	fs.DurationVar(&o.compactEvery, "compact-every", time.Minute, "how often decided journal records past retention are compacted (0: never, the journal keeps every record)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 15*time.Second, "bound on the graceful drain at SIGTERM")
	fs.DurationVar(&o.registerTimeout, "register-timeout", 2*time.Minute, "how long to keep retrying registration until a leader answers")
	fs.Float64Var(&o.proposeRate, "propose-rate", 0, "load driver: proposals per second (0: no driver)")
	fs.StringVar(&o.peerShards, "peer-shards", "", "load driver: other shards whose players it names, `id[:region],...` (region default: --region)")
	fs.Float64Var(&o.hot, "hot", 0.05, "load driver: share of proposals built around a few hot players")
	fs.Float64Var(&o.violations, "violations", 0.02, "load driver: share of proposals built to break the policy")
	fs.DurationVar(&o.matchTTL, "match-ttl", 5*time.Second, "match TTL (the driver renews every TTL/3); also the World's match TTL")
	fs.IntVar(&o.inflight, "inflight", 16, "load driver: most proposals awaiting a decision at once")
	fs.BoolVar(&o.faultInjection, "enable-fault-injection", false, "chaos testing only: serve /v1/fault to skew this process's clock and duplicate/reorder its votes and acks")
	fs.StringVar(&o.historyDir, "history-dir", "", "chaos testing only: append every effect the shard applies to a history file in this `directory` (with --history-epoch)")
	fs.Int64Var(&o.historyEpoch, "history-epoch", 0, "chaos testing only: the run's start in Unix nanoseconds, zero of the history's times (with --history-dir)")
	fs.BoolVar(&o.alwaysAvailable, "always-available", false, "simulated players never refuse, log out or get busy (to measure commit ratios under network faults)")
	fs.StringVar(&o.verifyKeys, "command-verify-keys", "", "coordinator public `keys` \"N...\" (coordinator signing-key), comma-separated; "+
		"if set, commands not signed by one of them are refused, never applied (default: unsigned commands accepted)")
	return fs, ld
}

// parseOptions parses args as shardsvc does (the command line in pflag's syntax, then
// the environment, from lookup, and the config file) and validates; done means exit
// with code.
func parseOptions(args []string, stderr io.Writer, lookup func(string) (string, bool)) (o options, code int, done bool) {
	fs, ld := flags(&o, io.Discard)
	ld.LookupEnv = lookup
	err := cli.ParseConfigured(fs, ld, args)
	if errors.Is(err, pflag.ErrHelp) {
		return o, 0, true
	}
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardsvc: %v\nRun 'shardsvc --help' for usage.\n", err)
		return o, 2, true
	}
	return o, 0, false
}

// finish completes options whose command line is parsed into fs: every flag not set
// there takes its environment variable, else its --config key, else its default; then
// validate.
func (o *options) finish(fs *flag.FlagSet, ld config.Loader) error {
	if err := ld.Parse(fs, nil); err != nil {
		return err
	}
	return o.validate()
}

func (o *options) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", config.ErrConfig, fmt.Sprintf(format, a...))
	}
	if err := natsutil.ValidateShardID(o.id); err != nil {
		return bad("--id %q: %v", o.id, err)
	}
	if _, err := natsutil.NewSubjects(o.prefix); err != nil {
		return bad("--prefix: %v", err)
	}
	switch {
	case o.region == "":
		return bad("--region is empty")
	case o.players < 1:
		return bad("--players (%d) must be >= 1", o.players)
	case o.compactEvery < 0:
		return bad("--compact-every (%s) must be >= 0 (0: never compact)", o.compactEvery)
	case o.drainTimeout <= 0 || o.registerTimeout <= 0:
		return bad("--drain-timeout and --register-timeout must be > 0")
	case (o.historyDir == "") != (o.historyEpoch == 0):
		return bad("--history-dir and --history-epoch go together (both or neither)")
	case o.historyEpoch < 0:
		return bad("--history-epoch (%d) must be Unix nanoseconds > 0", o.historyEpoch)
	case o.proposeRate < 0:
		return bad("--propose-rate (%v) must be >= 0", o.proposeRate)
	case o.matchTTL < 3*time.Millisecond:
		return bad("--match-ttl (%s) must be >= 3ms", o.matchTTL)
	case o.inflight < 1:
		return bad("--inflight (%d) must be >= 1", o.inflight)
	}
	if err := o.nats.Validate(); err != nil {
		return err
	}
	if o.journal == "" {
		o.journal = o.id + ".journal"
	}
	if strings.TrimSpace(o.verifyKeys) != "" {
		v, err := cmdsig.ParseKeys(o.verifyKeys)
		if err != nil {
			return bad("--command-verify-keys: %v", err)
		}
		o.verifier = v
	}
	seen := map[string]bool{o.id: true}
	for _, s := range strings.Split(o.peerShards, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, region, _ := strings.Cut(s, ":")
		if region == "" {
			region = o.region
		}
		if err := natsutil.ValidateShardID(id); err != nil {
			return bad("--peer-shards %q: %v", s, err)
		}
		if seen[id] {
			continue // naming this shard or a peer twice is harmless
		}
		seen[id] = true
		o.peers = append(o.peers, peer{id: id, region: region})
	}
	if o.proposeRate > 0 && len(o.peers) == 0 {
		return bad("--propose-rate needs --peer-shards: matches span at least two shards")
	}
	if !(o.hot >= 0 && o.hot <= 1) || !(o.violations >= 0 && o.violations <= 1) {
		return bad("--hot and --violations must be in [0, 1]")
	}
	return nil
}
