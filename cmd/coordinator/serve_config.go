package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/spf13/pflag"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/memlimit"
	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// maxMaxPlayers bounds --max-players: a proposal's players each become a lease, a
// shard command entry and a policy input row.
const maxMaxPlayers = 10000

// envPrefix starts the environment variable of every `coordinator serve` flag.
const envPrefix = "SHARDMATCH"

// serveOptions are the settings of `coordinator serve`, from flags, SHARDMATCH_*
// environment variables and a config file (see config.Loader for the precedence).
type serveOptions struct {
	configFile string

	id, data                string
	raftAddr, raftAdvertise string
	peers                   string
	bootstrap               bool
	join                    string
	nats                    config.NATS
	prefix                  string
	streamReplicas          int
	adminAddr, adminToken   string
	adminAdvertiseURL       string
	memoryLimitRatio        float64
	retentionMax            int
	snapshotFormat          uint
	policyBundle            string
	policyTimeout           time.Duration
	noPolicy                bool
	logLevel, logFormat     string
	prepareTimeout          time.Duration
	retention               time.Duration
	heartbeat, election     time.Duration
	shutdownTimeout         time.Duration
	raftLogToStderr         bool
	faultInjection          bool
	historyDir              string
	historyEpoch            int64
	unsafe                  string
	commandSigningKey       string
	admin                   adminSecurity
	// Raft mutual TLS (--raft-tls-*): all three or none.
	raftTLSCert, raftTLSKey, raftTLSCA string
	// Limits at the NATS intake (see natsapi.Config).
	maxProposalBytes int
	maxPlayers       int
	proposerRate     float64
	proposerBurst    int
	parsedPeers      []raft.Server
	joinURLs         []string
	// advertiseAddr is the Raft address other nodes dial, exactly as given: an IP or
	// a DNS name, never resolved here.
	advertiseAddr string
}

// serveFlags registers every serve setting on a new FlagSet, which cobra parses through
// cli.AddGoFlags (the command line) and config.Loader (environment and --config file).
func serveFlags(o *serveOptions, stderr io.Writer) (*flag.FlagSet, config.Loader) {
	ld := config.Loader{EnvPrefix: envPrefix}
	fs := flag.NewFlagSet("coordinator serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := coordinator.DefaultConfig()
	fs.StringVar(&o.configFile, config.FileFlag, "", "config `file` of `key = value` lines")
	fs.StringVar(&o.id, "id", "", "this node's Raft server `id` (required)")
	fs.StringVar(&o.data, "data", "", "data `directory` for the Raft log and snapshots (required)")
	fs.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:7000", "Raft TCP `host:port` to listen on")
	fs.StringVar(&o.raftAdvertise, "raft-advertise", "", "Raft `host:port` other nodes dial, an IP or a DNS name (not resolved at start: "+
		"peers dial it by name each time) (default: --raft-addr; required if that listens on all interfaces)")
	fs.StringVar(&o.peers, "peers", "", "static Raft voters `id=host:port,...` (hosts may be DNS names), for --bootstrap; "+
		"with --bootstrap alone this node is added if missing")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "form a new cluster from --peers if the data directory holds no Raft state; "+
		"with --peers and --join too: start on existing state, else bootstrap with exactly --peers if --id is one of them, else join")
	fs.StringVar(&o.join, "join", "", "join an existing cluster through its admin APIs `http://host:port,...` (POST /v1/voters with --admin-token)")
	o.nats.Register(fs)
	fs.StringVar(&o.prefix, "prefix", natsutil.DefaultPrefix, "NATS subject and stream `prefix`")
	fs.IntVar(&o.streamReplicas, "stream-replicas", 1, "JetStream replicas per stream (3 on a NATS cluster)")
	fs.StringVar(&o.adminAddr, "admin-addr", ":8080", "admin HTTP `host:port`")
	fs.StringVar(&o.adminAdvertiseURL, "admin-advertise-url", "", "this node's admin API base `URL` as clients reach it, named in a follower's "+
		"NOT_LEADER answers so the CLI and console can follow them (default: http, or https with --admin-tls-cert, "+
		"then --admin-addr's host, or --raft-advertise's host when --admin-addr listens on all interfaces, and --admin-addr's port)")
	fs.Float64Var(&o.memoryLimitRatio, "memory-limit-ratio", memlimit.DefaultRatio, "soft memory limit of the Go runtime as a `ratio` of the "+
		"container's cgroup memory limit, so a large state is collected harder instead of OOM-killed (0: none; GOMEMLIMIT, if set, wins)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer `token` for mutating admin calls and --join (prefer the environment variable; empty disables them)")
	fs.StringVar(&o.policyBundle, "policy-bundle", "", "policy bundle `directory`, hot-reloaded on change and SIGHUP (default: the embedded bundle)")
	fs.DurationVar(&o.policyTimeout, "policy-timeout", defaultPolicyTimeout, "bound on one policy evaluation")
	fs.BoolVar(&o.noPolicy, "no-policy", false, "admit every proposal without evaluating policy")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn, error or off")
	fs.StringVar(&o.logFormat, "log-format", "json", "log `format`: json or text")
	fs.DurationVar(&o.prepareTimeout, "prepare-timeout", def.Limits.DefaultPrepareTimeout, "prepare timeout of proposals that give none")
	fs.IntVar(&o.maxProposalBytes, "max-proposal-bytes", natsapi.DefaultMaxProposalBytes, "largest proposal taken, encoded; a larger one is answered INVALID unread")
	fs.IntVar(&o.maxPlayers, "max-players", def.Limits.MaxPlayers, "most players in one proposal; more is answered INVALID")
	fs.Float64Var(&o.proposerRate, "proposer-rate", 0, "proposals a second each proposer identity may make on average (0: unlimited); "+
		"over it a proposal is answered RATE_LIMITED unread")
	fs.IntVar(&o.proposerBurst, "proposer-burst", 0, "proposals each proposer identity may make at once (default: --proposer-rate rounded up)")
	fs.DurationVar(&o.retention, "retention", def.Retention, "how long a finished transaction stays queryable")
	fs.IntVar(&o.retentionMax, "retention-max", def.MaxRetained, "most finished transactions kept: past it the oldest are forgotten before --retention "+
		"(0: no bound); it is also how far back a repeated proposal id is recognised, so keep it above rate × the proposers' retry horizon")
	fs.UintVar(&o.snapshotFormat, "snapshot-format", uint(coordinator.SnapshotFormats[0]), "format of the snapshots this node writes: 2, or 1 "+
		"while a rolling upgrade from a build that reads only format 1 is under way (slower; switch back when every node runs this build)")
	fs.DurationVar(&o.heartbeat, "raft-heartbeat-timeout", def.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&o.election, "raft-election-timeout", def.ElectionTimeout, "Raft election timeout")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "bound on the graceful shutdown")
	fs.BoolVar(&o.raftLogToStderr, "raft-log", false, "copy hashicorp/raft's own log to stderr")
	fs.BoolVar(&o.faultInjection, "enable-fault-injection", false, "chaos testing only: serve /v1/fault to skew this node's clock and duplicate/reorder its commands")
	fs.StringVar(&o.historyDir, "history-dir", "", "chaos testing only: append every lease change the FSM applies to a history file in this `directory` (with --history-epoch)")
	fs.Int64Var(&o.historyEpoch, "history-epoch", 0, "chaos testing only: the run's start in Unix nanoseconds, zero of the history's times (with --history-dir)")
	fs.StringVar(&o.unsafe, "unsafe", "", "chaos testing only, needs --enable-fault-injection: break the protocol on purpose to prove the checkers catch it, `mode` "+
		strings.Join(unsafeModes, " or "))
	o.admin.register(fs)
	fs.StringVar(&o.commandSigningKey, "command-signing-key", "", "nkey seed `file` (coordinator signing-key) signing every shard command; "+
		"shards given its public key with --command-verify-keys refuse commands without a valid signature (default: unsigned)")
	fs.StringVar(&o.raftTLSCert, "raft-tls-cert", "", "PEM certificate `file` this node presents to Raft peers, as server and client "+
		"(SANs: the host of --raft-advertise); re-read when it changes (with --raft-tls-key and --raft-tls-ca; default: plain TCP)")
	fs.StringVar(&o.raftTLSKey, "raft-tls-key", "", "PEM private key `file` of --raft-tls-cert")
	fs.StringVar(&o.raftTLSCA, "raft-tls-ca", "", "PEM CA certificate(s) `file` Raft peers' certificates must chain to; a peer without one is refused")
	return fs, ld
}

// parseServeOptions parses args as `coordinator serve` does (the command line in
// pflag's syntax, then the environment, from lookup, and the config file), and
// validates the result. done is true when the caller should exit with code.
func parseServeOptions(args []string, stderr io.Writer, lookup func(string) (string, bool)) (o serveOptions, code int, done bool) {
	fs, ld := serveFlags(&o, io.Discard)
	ld.LookupEnv = lookup
	err := cli.ParseConfigured(fs, ld, args)
	if errors.Is(err, pflag.ErrHelp) {
		return o, 0, true
	}
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "coordinator serve: %v\nRun 'coordinator serve --help' for usage.\n", err)
		return o, 2, true
	}
	return o, 0, false
}

// finish completes options whose command line is parsed into fs: every flag not set
// there takes its environment variable, else its --config file key, else its default
// (config.Loader); then validate.
func (o *serveOptions) finish(fs *flag.FlagSet, ld config.Loader) error {
	if err := ld.Parse(fs, nil); err != nil {
		return err
	}
	return o.validate()
}

// validate checks the options and derives parsedPeers, joinURLs and advertiseAddr.
func (o *serveOptions) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", config.ErrConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case o.id == "":
		return bad("--id is required")
	case o.data == "":
		return bad("--data is required")
	case o.bootstrap && o.peers == "":
		return bad("--bootstrap needs --peers")
	case o.admin.validate() != nil:
		return bad("%v", o.admin.validate())
	case o.join != "" && o.adminToken == "":
		return bad("--join needs --admin-token (the leader's admin API refuses unauthenticated changes)")
	case o.streamReplicas < 1 || o.streamReplicas > 5:
		return bad("--stream-replicas (%d) must be in [1, 5]", o.streamReplicas)
	case o.prepareTimeout <= 0 || o.prepareTimeout > coordinator.DefaultLimits().MaxPrepareTimeout:
		return bad("--prepare-timeout (%s) must be in (0, %s]", o.prepareTimeout, coordinator.DefaultLimits().MaxPrepareTimeout)
	case o.maxProposalBytes < 1024 || o.maxProposalBytes > natsutil.DefaultMaxMsgSize:
		return bad("--max-proposal-bytes (%d) must be in [1024, %d] (the request stream's largest message)", o.maxProposalBytes, natsutil.DefaultMaxMsgSize)
	case o.maxPlayers < 2 || o.maxPlayers > maxMaxPlayers:
		return bad("--max-players (%d) must be in [2, %d]", o.maxPlayers, maxMaxPlayers)
	case o.proposerRate < 0 || math.IsNaN(o.proposerRate) || o.proposerRate > 1e6:
		return bad("--proposer-rate (%g) must be in [0, 1e6] (0: unlimited)", o.proposerRate)
	case o.proposerBurst < 0 || (o.proposerBurst > 0 && o.proposerRate == 0):
		return bad("--proposer-burst (%d) must be >= 0 and needs --proposer-rate", o.proposerBurst)
	case o.retention <= 0:
		return bad("--retention (%s) must be > 0", o.retention)
	case o.retentionMax < 0:
		return bad("--retention-max (%d) must be >= 0 (0: no bound)", o.retentionMax)
	case o.snapshotFormat > math.MaxUint16 || !slices.Contains(coordinator.SnapshotFormats, uint16(o.snapshotFormat)):
		return bad("--snapshot-format %d: this build writes %v", o.snapshotFormat, coordinator.SnapshotFormats)
	case o.heartbeat <= 0 || o.election < o.heartbeat:
		return bad("--raft-election-timeout (%s) must be >= --raft-heartbeat-timeout (%s) > 0", o.election, o.heartbeat)
	case o.adminAddr == "":
		return bad("--admin-addr is required")
	case math.IsNaN(o.memoryLimitRatio) || o.memoryLimitRatio < 0 || o.memoryLimitRatio > 1:
		return bad("--memory-limit-ratio (%g) must be in [0, 1] (0: no limit)", o.memoryLimitRatio)
	case (o.raftTLSCert == "") != (o.raftTLSKey == "") || (o.raftTLSCert == "") != (o.raftTLSCA == ""):
		return bad("%v", errRaftTLSFlags)
	case (o.historyDir == "") != (o.historyEpoch == 0):
		return bad("--history-dir and --history-epoch go together (both or neither)")
	case o.historyEpoch < 0:
		return bad("--history-epoch (%d) must be Unix nanoseconds > 0", o.historyEpoch)
	case o.unsafe != "" && !o.faultInjection:
		return bad("--unsafe %s breaks the protocol on purpose and is refused without --enable-fault-injection (chaos testing only)", o.unsafe)
	case o.unsafe != "" && !slices.Contains(unsafeModes, o.unsafe):
		return bad("--unsafe %q: unknown mode (known: %s)", o.unsafe, strings.Join(unsafeModes, ", "))
	}
	if _, err := natsutil.NewSubjects(o.prefix); err != nil {
		return bad("--prefix: %v", err)
	}
	if err := o.nats.Validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(o.raftAddr); err != nil {
		return bad("--raft-addr %q: %v", o.raftAddr, err)
	}
	adv := o.raftAdvertise
	if adv == "" {
		adv = o.raftAddr
	}
	if err := checkAdvertise(adv); err != nil {
		return bad("%v", err)
	}
	o.advertiseAddr = adv
	if o.adminAdvertiseURL == "" {
		o.adminAdvertiseURL = defaultAdminURL(o.adminAddr, adv, o.admin.tlsCert != "")
	}
	if err := checkAdminURL(o.adminAdvertiseURL); err != nil {
		return bad("%v", err)
	}
	if o.peers != "" {
		var err error
		if o.parsedPeers, err = parsePeers(o.peers); err != nil {
			return bad("--peers: %v", err)
		}
	}
	for _, u := range strings.Split(o.join, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.joinURLs = append(o.joinURLs, u)
		}
	}
	return nil
}

// defaultAdminURL is the admin URL a node advertises when --admin-advertise-url is not
// given: the scheme, adminAddr's host (the Raft advertise host when adminAddr listens on
// every interface) and adminAddr's port.
func defaultAdminURL(adminAddr, raftAdvertise string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, _, _ = net.SplitHostPort(raftAdvertise)
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// checkAdminURL refuses an advertised admin URL a client could not follow.
func checkAdminURL(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.Port() == "0" ||
		(pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" || pu.User != nil {
		return fmt.Errorf("--admin-advertise-url %q: want a base URL like http://10.0.0.3:8080 or https://c1.example:8080", u)
	}
	if ip := net.ParseIP(pu.Hostname()); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("--admin-advertise-url %q is not reachable by clients: name this node's address", u)
	}
	return nil
}

// checkAdvertise refuses a Raft address other nodes could not dial: no host, an
// unspecified IP (0.0.0.0, ::) or port 0. A DNS name is accepted as it is, without
// resolving it: in Kubernetes a pod's name may not resolve until it is running.
func checkAdvertise(adv string) error {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return fmt.Errorf("--raft-advertise %q: %v", adv, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("--raft-advertise %q: port %q is not a number in [1, 65535]", adv, port)
	}
	if ip := net.ParseIP(host); host == "" || p == 0 || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("raft address %q is not dialable: set --raft-advertise to this node's reachable host:port", adv)
	}
	return nil
}

// joinMode says how a node becomes part of its cluster when it starts.
type joinMode int

const (
	startOnly     joinMode = iota // start on existing state, or wait to be added
	bootstrapWith                 // bootstrap with startPlan.peers if there is no Raft state
	joinVia                       // ask --join's admin APIs to add this node as a voter
)

// startPlan is what a node does at start about cluster membership.
type startPlan struct {
	mode  joinMode
	peers []raft.Server // with bootstrapWith
}

// combined reports --bootstrap --peers --join together: the form a StatefulSet's every
// pod runs with, whatever its ordinal.
func (o *serveOptions) combined() bool {
	return o.bootstrap && len(o.parsedPeers) > 0 && len(o.joinURLs) > 0
}

// plan decides the start given whether the data directory holds Raft state.
//   - --bootstrap --peers P --join J: with state, just start. Otherwise, if --id is
//     one of P's ids, bootstrap with exactly P (every such node bootstraps the same
//     configuration); else join through J (a node added by scaling up).
//   - --bootstrap --peers P: bootstrap with P, this node added if missing (Raft skips
//     it when there is state).
//   - --join J: ask J to add this node until it is a voter (at once done when it
//     already is).
func (o *serveOptions) plan(hasState bool) startPlan {
	switch {
	case o.combined() && hasState:
		return startPlan{mode: startOnly}
	case o.combined():
		for _, p := range o.parsedPeers {
			if string(p.ID) == o.id {
				return startPlan{mode: bootstrapWith, peers: o.parsedPeers}
			}
		}
		return startPlan{mode: joinVia}
	case o.bootstrap:
		peers := slices.Clone(o.parsedPeers)
		if !slices.ContainsFunc(peers, func(p raft.Server) bool { return string(p.ID) == o.id }) {
			peers = append(peers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(o.id), Address: raft.ServerAddress(o.advertiseAddr)})
		}
		return startPlan{mode: bootstrapWith, peers: peers}
	case len(o.joinURLs) > 0:
		return startPlan{mode: joinVia}
	}
	return startPlan{mode: startOnly}
}

// Test-only protocol breakage of --unsafe; see coordinator.Config's Unsafe fields.
const (
	unsafeDeliverBeforeLog = "deliver-before-log" // Sabotage.DeliverBeforeLog
	unsafeWallClockExpiry  = "wallclock-expiry"   // Sabotage.WallClockExpiry
)

var unsafeModes = []string{unsafeDeliverBeforeLog, unsafeWallClockExpiry}

// sabotageOf is the coordinator's sabotage named by an --unsafe mode ("" is none).
func sabotageOf(mode string) coordinator.Sabotage {
	return coordinator.Sabotage{DeliverBeforeLog: mode == unsafeDeliverBeforeLog, WallClockExpiry: mode == unsafeWallClockExpiry}
}

// parsePeers reads `id=host:port,...`.
func parsePeers(s string) ([]raft.Server, error) {
	var out []raft.Server
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %s: %v", id, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("peer %s is listed twice", id)
		}
		seen[id] = true
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	if len(out) == 0 {
		return nil, errors.New("no peers")
	}
	return out, nil
}
