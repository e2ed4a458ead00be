package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/chaos/collect"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsnode"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/memlimit"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// newServeCmd is `coordinator serve`: one production node until SIGINT or SIGTERM. It
// exits 0 after a graceful shutdown, 1 if the node could not start, 2 on bad settings.
func newServeCmd() *cobra.Command {
	var o serveOptions
	fs, ld := serveFlags(&o, io.Discard)
	c := &cobra.Command{
		Use:   "serve --id ID --data DIR [flags]",
		Short: "Run one production coordinator node",
		Long: "Run one production coordinator node: Raft over TCP, shards and proposers over NATS, the admin\n" +
			"HTTP API (/healthz, /readyz, /metrics, /v1/..., the console at /ui/). /readyz is 200 once caught\n" +
			"up with the leader: within 64 entries of the commit index the leader reports over NATS (the\n" +
			"leader itself once it has taken over). On Kubernetes give every pod the same --bootstrap\n" +
			"--peers --join and its DNS name as --raft-advertise.\n\n" +
			"Every setting is a flag, an environment variable (" + envPrefix + "_<FLAG>, shown with each flag)\n" +
			"or a `key = value` line of the --config file (keys are flag names); a flag wins over its\n" +
			"variable, which wins over the file, which wins over the default.",
		Example: "  coordinator serve --id c1 --data ./data/c1 --raft-addr 127.0.0.1:7001 \\\n" +
			"    --peers c1=127.0.0.1:7001,c2=127.0.0.1:7002,c3=127.0.0.1:7003 --bootstrap \\\n" +
			"    --nats-url nats://127.0.0.1:4222 --admin-addr 127.0.0.1:8081\n" +
			"  SHARDMATCH_ADMIN_TOKEN=... coordinator serve --config /etc/shardmatch/serve.conf",
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ld.LookupEnv = os.LookupEnv
			if err := o.finish(fs, ld); err != nil {
				return &cli.UsageError{Err: err}
			}
			return cli.Exit(serveMain(o, c.ErrOrStderr()))
		},
	}
	cli.AddGoFlags(c.Flags(), fs, cli.GoFlagsOptions{Env: ld.EnvName})
	return c
}

// runServe runs `coordinator serve args` as the binary would, for tests.
func runServe(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), append([]string{"serve"}, args...), stdout, stderr)
}

// serveMain runs the node of o until SIGINT or SIGTERM.
func serveMain(o serveOptions, stderr io.Writer) int {
	log, err := config.NewLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator serve: %v\n", err)
		return 2
	}
	log = log.With("node", o.id)
	log, stopTelemetry := startTelemetry(log, "shardmatch-coordinator", o.id)
	defer stopTelemetry()
	if ml, err := memlimit.Apply(cgroupRoot, o.memoryLimitRatio); err != nil {
		log.Warn("no soft memory limit from the cgroup", "err", err)
	} else if ml.Limit > 0 {
		log.Info("soft memory limit", "bytes", ml.Limit, "source", ml.Source, "cgroup_limit", ml.Cgroup)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := startServe(ctx, o, log, stderr)
	if err != nil {
		log.Error("coordinator failed to start", "err", err)
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", "signal")
	case err := <-s.fatal:
		log.Error("shutting down", "cause", err)
	}
	stop()
	s.shutdown()
	log.Info("stopped")
	return 0
}

// cgroupRoot is where a container sees its own cgroup's files.
const cgroupRoot = "/sys/fs/cgroup"

// served is one running node and everything it owns, closed in reverse order.
type served struct {
	o        serveOptions
	log      *slog.Logger
	nc       *nats.Conn
	rtrans   *raft.NetworkTransport
	ptrans   *natstransport.Coordinator
	stack    *natsnode.Assembly // the node, its transport to the shards and its NATS API
	api      *natsapi.Server    // stack's
	node     *coordinator.Node  // stack's
	adm      *admin.Server
	audit    *admin.Auditor
	http     *http.Server
	stopPol  context.CancelFunc
	stopJoin context.CancelFunc
	fatal    chan error
	// clk is the node's one clock: every component reads it, and with
	// --enable-fault-injection /v1/fault skews it. faults is the transport hook (nil
	// without fault injection); history records the FSM's lease changes (nil without
	// --history-dir).
	clk     *clock.Skewed
	faults  *natstransport.Faults
	history *collect.Sink
}

// startServe wires the node: NATS, streams, the shard transport, the NATS API, the
// policy engine, Raft, the node and its admin HTTP API. On error it closes what it
// opened.
func startServe(ctx context.Context, o serveOptions, log *slog.Logger, stderr io.Writer) (_ *served, err error) {
	s := &served{o: o, log: log, stopPol: func() {}, stopJoin: func() {}, fatal: make(chan error, 1),
		clk: clock.NewSkewed(clock.NewReal())}
	defer func() {
		if err != nil {
			s.shutdown()
		}
	}()
	if o.faultInjection {
		s.faults = natstransport.NewFaults(config.IDSeed(o.id))
		log.Warn("fault injection enabled: /v1/fault can skew this node's clock and disturb its commands", "unsafe", o.unsafe)
	}
	if o.historyDir != "" {
		if s.history, err = collect.NewSink(o.historyDir, o.id, time.Unix(0, o.historyEpoch)); err != nil {
			return s, fmt.Errorf("history: %w", err)
		}
		log.Info("recording the FSM's lease changes for a chaos history", "file", s.history.Path())
	}
	signer, err := loadCommandSigner(o.commandSigningKey, log) // before connecting: a bad key fails fast
	if err != nil {
		return s, err
	}
	rawAdminLn, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return s, fmt.Errorf("admin listener: %w", err)
	}
	adminLn, adminLimit, err := o.admin.secureListener(rawAdminLn, log)
	if err != nil {
		_ = rawAdminLn.Close()
		return s, err
	}
	defer func() {
		if s.http == nil {
			_ = adminLn.Close()
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if s.nc, err = o.nats.Connect(cctx, "shardmatch-coordinator-"+o.id, log); err != nil {
		return s, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return s, fmt.Errorf("jetstream: %w", err)
	}
	streams := natsutil.StreamConfig{Prefix: o.prefix, Replicas: o.streamReplicas}
	if err := natsutil.EnsureStreams(cctx, js, streams); err != nil {
		return s, fmt.Errorf("ensure streams: %w", err)
	}

	// Built in dependency order, nothing forwarding to a part not made yet: metrics and
	// policy, then the node (its transport to shards made by the node's factory, with
	// the node's reply handler), then the node's NATS API, which Listen tells of a
	// leadership the node may already hold.
	metrics, err := admin.NewMetrics(admin.MetricsConfig{})
	if err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	nc := s.nc
	if err := metrics.AddNATSConn(nc.IsConnected, func() uint64 { return nc.Stats().Reconnects }); err != nil {
		return s, err
	}
	leaderIndex, err := natsapi.NewLeaderIndexClient(natsapi.LeaderIndexClientConfig{Conn: s.nc, Prefix: o.prefix, Clock: s.clk})
	if err != nil {
		return s, fmt.Errorf("leader index: %w", err)
	}
	var pol coordinator.Policy
	if !o.noPolicy {
		eng, err := policy.New(policy.Config{BundleDir: o.policyBundle, EvalTimeout: o.policyTimeout, Logger: log, Clock: s.clk})
		if err != nil {
			return s, fmt.Errorf("policy: %w", err)
		}
		if o.policyBundle != "" { // hot reload on file change and SIGHUP
			var wctx context.Context
			wctx, s.stopPol = context.WithCancel(context.Background())
			go func() { _ = eng.Watch(wctx) }()
		}
		pol = eng
		if err := metrics.AddPolicy(eng.Stats); err != nil {
			return s, err
		}
	}

	var raftLog io.Writer = io.Discard
	if o.raftLogToStderr {
		raftLog = stderr
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return s, err
	}
	if s.audit, err = o.admin.auditor(o.data, o.prefix, s.nc, log); err != nil {
		return s, err
	}
	hasState, err := coordinator.HasExistingState(o.data)
	if err != nil {
		return s, err
	}
	plan := o.plan(hasState)
	if s.rtrans, err = newRaftTransport(o.raftAddr, o.advertiseAddr, raftTLSFiles{o.raftTLSCert, o.raftTLSKey, o.raftTLSCA}, log, raftLog); err != nil {
		return s, fmt.Errorf("raft transport on %s: %w", o.raftAddr, err)
	}
	cfg := coordinator.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftTransport = o.id, o.data, s.rtrans
	cfg.Bootstrap, cfg.Peers = plan.mode == bootstrapWith, plan.peers
	cfg.Clock, cfg.Logger, cfg.Policy = s.clk, log, pol
	if s.history != nil {
		cfg.Observer = collect.Observer(o.id, s.history)
	}
	if o.raftLogToStderr {
		cfg.RaftLogOutput = stderr
	}
	cfg.Limits.DefaultPrepareTimeout = o.prepareTimeout
	cfg.Limits.MaxProposalBytes, cfg.Limits.MaxPlayers = o.maxProposalBytes, o.maxPlayers
	cfg.Retention, cfg.MaxRetained, cfg.SnapshotFormat = o.retention, o.retentionMax, uint16(o.snapshotFormat)
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = o.heartbeat, o.election
	// The lease is half the heartbeat timeout, as in coordinator.DefaultConfig, so that
	// a longer --raft-heartbeat-timeout (a slower network) does not leave the leader
	// stepping down on a lease sized for the default (hashicorp/raft's floor is 5ms).
	cfg.LeaderLeaseTimeout = max(o.heartbeat/2, 5*time.Millisecond)
	cfg.OnLeadership = func(leading bool, term uint64) {
		log.Info("leadership changed", "leading", leading, "term", term)
	}
	cfg.OnDecided = metrics.ObserveDecision
	cfg.OnPhase = func(phase string, d time.Duration) { metrics.ObservePhase(admin.Phase(phase), d) }
	if s.stack, err = natsnode.New(cctx, natsnode.Config{Conn: s.nc, Prefix: o.prefix,
		Transport: natstransport.CoordinatorConfig{JetStream: js, Logger: log, SkipEnsureStreams: true, Clock: s.clk, Faults: s.faults, Signer: signer},
		API: natsapi.Config{NodeID: o.id, Logger: log, Clock: s.clk, SkipEnsureStreams: true, ReplyPrefixes: []string{"_INBOX."},
			OnProposal: metrics.ObserveProposal, AdminURL: strings.TrimSuffix(o.adminAdvertiseURL, "/"),
			MaxProposalBytes: o.maxProposalBytes, ProposerRate: o.proposerRate, ProposerBurst: o.proposerBurst}},
		cfg, coordinator.WithSabotage(sabotageOf(o.unsafe))); err != nil {
		return s, err
	}
	s.node, s.api, s.ptrans = s.stack.Node, s.stack.API, s.stack.Transport
	if err := addMalformedSources(metrics, s.api, s.ptrans); err != nil {
		return s, err
	}

	if err := addConnRefusals(metrics.Registry(), adminLimit); err != nil {
		return s, err
	}
	admCfg := admin.Config{Node: s.node, Metrics: metrics, AuthToken: o.adminToken, Logger: log, Clock: s.clk,
		ReadToken: o.admin.readToken, Audit: s.audit, MaxBodyBytes: o.admin.maxBodyBytes,
		AdvertiseURL: strings.TrimSuffix(o.adminAdvertiseURL, "/"), PrepareTimeout: o.prepareTimeout,
		LeaderIndex: admin.LeaderIndexFunc(func(ctx context.Context) (admin.LeaderIndex, error) {
			li, err := leaderIndex.LeaderIndex(ctx)
			return admin.LeaderIndex{NodeID: li.NodeID, Term: li.Term, CommitIndex: li.CommitIndex, AdminURL: li.AdminURL}, err
		})}
	if o.faultInjection {
		admCfg.Faults = &admin.FaultConfig{Clock: s.clk, Transport: s.faults}
	}
	if s.adm, err = admin.New(admCfg); err != nil {
		return s, fmt.Errorf("admin: %w", err)
	}
	s.http = adminHTTPServer(s.adm.Handler(), log)
	go func() {
		if err := s.http.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case s.fatal <- fmt.Errorf("admin http: %w", err):
			default:
			}
		}
	}()
	if plan.mode == joinVia {
		var jctx context.Context
		jctx, s.stopJoin = context.WithCancel(context.Background())
		go s.join(jctx)
	}
	log.Info("started", "raft_addr", o.advertiseAddr, "admin_addr", adminLn.Addr().String(),
		"nats", s.nc.ConnectedUrlRedacted(), "prefix", o.prefix, "has_state", hasState,
		"bootstrap", plan.mode == bootstrapWith, "join", plan.mode == joinVia)
	return s, nil
}

// addMalformedSources exports the malformed-message counters of the node's NATS
// API (proposals, status, lease and register requests) and of its shard transport
// (votes and acks).
func addMalformedSources(m *admin.Metrics, api *natsapi.Server, ptrans *natstransport.Coordinator) error {
	if err := m.AddMalformedSource("api", func() uint64 {
		st := api.Stats()
		return st.Malformed + st.InvalidRequests + st.BadReply + st.NoReply + st.Oversized + st.ForgedReply
	}); err != nil {
		return err
	}
	if err := addIntakeRefusals(m, api); err != nil {
		return err
	}
	if err := m.AddMalformedSource("shard_replies", func() uint64 {
		st := ptrans.Stats()
		return st.Malformed + st.ShardMismatch
	}); err != nil {
		return err
	}
	return addCommandCounters(m, ptrans)
}

// addCommandCounters exports shardmatch_shard_commands_sent_total and
// shardmatch_shard_command_messages_total: their ratio is the mean number of commands
// per message, above 1 when shards take command batches and load is high.
func addCommandCounters(m *admin.Metrics, ptrans *natstransport.Coordinator) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: admin.Namespace, Name: "shard_commands_sent_total",
			Help: "Prepare, Commit and Abort commands this node handed to NATS for the shards."},
			func() float64 { return float64(ptrans.Stats().Sent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: admin.Namespace, Name: "shard_command_messages_total",
			Help: "Messages that carried those commands: one per lone command, one per command batch."},
			func() float64 { return float64(ptrans.Stats().Messages) }),
	} {
		if err := m.Registry().Register(c); err != nil {
			return fmt.Errorf("metrics: shard commands: %w", err)
		}
	}
	return nil
}

// addIntakeRefusals exports shardmatch_intake_refused_total{reason}: proposals and
// requests the NATS API refused before the node saw them, by reason: rate_limited
// (over --proposer-rate), oversized (over --max-proposal-bytes, or a request over
// natsapi.DefaultMaxRequestBytes) and reply_not_inbox (an Sm-Reply or reply subject
// that is not a client inbox).
func addIntakeRefusals(m *admin.Metrics, api *natsapi.Server) error {
	for reason, read := range map[string]func(natsapi.Stats) uint64{
		"rate_limited":    func(st natsapi.Stats) uint64 { return st.RateLimited },
		"oversized":       func(st natsapi.Stats) uint64 { return st.Oversized },
		"reply_not_inbox": func(st natsapi.Stats) uint64 { return st.ForgedReply },
	} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: admin.Namespace, Name: "intake_refused_total",
			Help:        "Proposals and requests refused at the NATS API before the node saw them, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason}}, func() float64 { return float64(read(api.Stats())) })
		if err := m.Registry().Register(c); err != nil {
			return fmt.Errorf("metrics: intake refusals: %w", err)
		}
	}
	return nil
}

// shutdown hands leadership over if this node leads, then stops the admin HTTP API,
// the node, the API server, the transports, and drains NATS. Safe on a partly
// started node.
func (s *served) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.shutdownTimeout)
	defer cancel()
	s.stopJoin()
	if s.node != nil && s.node.Raft().State() == raft.Leader {
		done := make(chan error, 1)
		go func() { done <- s.node.TransferLeadership() }()
		select {
		case err := <-done:
			if err != nil {
				s.log.Warn("leadership transfer failed", "err", err)
			} else {
				s.log.Info("leadership transferred")
			}
		case <-ctx.Done():
			s.log.Warn("leadership transfer timed out")
		}
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
	}
	if s.adm != nil {
		s.adm.Close()
	}
	if s.audit != nil {
		_ = s.audit.Close()
	}
	if s.node != nil {
		if err := s.node.Shutdown(); err != nil {
			s.log.Warn("node shutdown", "err", err)
		}
	}
	if s.stack != nil {
		s.stack.Close() // the node is down already: its API server and transport
	}
	if s.rtrans != nil {
		_ = s.rtrans.Close()
	}
	s.stopPol()
	if s.nc != nil {
		drainConn(ctx, s.nc)
	}
	s.faults.Wait()
	if s.history != nil {
		s.history.CloseLogged(s.log)
	}
}

// drainConn drains nc and waits, at most until ctx ends, for it to close.
func drainConn(ctx context.Context, nc *nats.Conn) {
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	for !nc.IsClosed() {
		select {
		case <-ctx.Done():
			nc.Close()
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// join asks the cluster's admin APIs, in turn, to add this node as a voter, until
// one agrees or this node already is in the configuration.
func (s *served) join(ctx context.Context) {
	body, _ := json.Marshal(map[string]string{"id": s.o.id, "addr": s.o.advertiseAddr})
	hc, err := admin.NewHTTPClient(s.o.admin.ca, 15*time.Second)
	if err != nil { // validated at start: cannot happen unless the file went away
		s.log.Error("join: cannot trust the admin CA", "err", err)
		return
	}
	defer hc.CloseIdleConnections()
	wait := 250 * time.Millisecond
	for {
		if f := s.node.Raft().GetConfiguration(); f.Error() == nil {
			for _, sv := range f.Configuration().Servers {
				if string(sv.ID) == s.o.id && sv.Suffrage == raft.Voter {
					s.log.Info("joined the cluster")
					return
				}
			}
		}
		for _, u := range s.o.joinURLs {
			err := postVoter(ctx, hc, admin.BaseURL(u, s.o.admin.ca != ""), s.o.adminToken, body)
			if err == nil {
				s.log.Info("join accepted", "via", u)
				return
			}
			s.log.Warn("join attempt failed", "via", u, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// postVoter is POST <base>/v1/voters with a bearer token.
func postVoter(ctx context.Context, hc *http.Client, base, token string, body []byte) error {
	u := strings.TrimRight(base, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v1/voters", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return admin.ExplainTLS(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
