package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/telemetry"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// serveShard runs the shard server of o until SIGINT or SIGTERM and returns the exit
// code: 0 after a graceful drain, 1 if the shard could not start, 2 on bad settings.
func serveShard(o options, stderr io.Writer) int {
	log, err := config.NewLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "shardsvc: %v\n", err)
		return 2
	}
	log = log.With("shard", o.id)
	log, stopTelemetry := telemetry.Start(context.Background(), telemetry.Options{ServiceName: "shardmatch-shard", ServiceInstance: o.id, Logger: log})
	defer stopTelemetry()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := start(ctx, o, log)
	if err != nil {
		log.Error("shard failed to start", "err", err)
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("draining", "cause", "signal")
	case err := <-s.fatal:
		log.Error("draining", "cause", err)
	}
	stop()
	s.shutdown()
	log.Info("stopped")
	return 0
}

// server is one running shard server and everything it owns.
type server struct {
	o       options
	log     *slog.Logger
	clk     clock.Clock   // the process's one clock: skew below, seen through the interface
	skew    *clock.Skewed // what --enable-fault-injection's endpoint changes
	faults  *natstransport.Faults
	history *collect.Sink
	nc      *nats.Conn
	sh      *shard.Shard
	cli     *client.Client        // sh's
	journal twophase.Journal      // sh's
	part    *twophase.Participant // sh's
	world   *shardsvc.World
	http    *http.Server
	driver  *shardsvc.LoadGen
	stopBg  context.CancelFunc // the driver
	bgDone  chan struct{}
	fatal   chan error
}

// start opens the journal, builds the World and the Participant, registers with the
// coordinator (retrying until a leader answers), serves commands, and starts the
// admin HTTP API, the compactor and the load driver.
func start(ctx context.Context, o options, log *slog.Logger) (_ *server, err error) {
	// Every component gets one clock, skewable (zero skew unless fault injection
	// changes it), so a chaos run's clock faults reach the whole process.
	skew := clock.NewSkewed(clock.NewReal())
	s := &server{o: o, log: log, clk: skew, skew: skew, stopBg: func() {}, bgDone: make(chan struct{}), fatal: make(chan error, 1)}
	close(s.bgDone)
	if o.faultInjection {
		s.faults = natstransport.NewFaults(o.seed ^ config.IDSeed(o.id))
		log.Warn("fault injection enabled: /v1/fault can skew this process's clock and disturb its replies")
	}
	defer func() {
		if err != nil {
			s.shutdown()
		}
	}()
	var adminLn net.Listener
	if o.adminAddr != "" {
		if adminLn, err = net.Listen("tcp", o.adminAddr); err != nil {
			return s, fmt.Errorf("admin listener: %w", err)
		}
		defer func() {
			if s.http == nil {
				_ = adminLn.Close()
			}
		}()
	}
	wc := shardsvc.DefaultWorldConfig()
	wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = o.id, o.region, o.players, o.matchTTL, s.clk, o.seed
	wc.AlwaysAvailable = o.alwaysAvailable
	if s.world, err = shardsvc.NewWorld(wc); err != nil {
		return s, err
	}
	var game twophase.ShardHandler = s.world
	if o.historyDir != "" {
		if s.history, err = collect.NewSink(o.historyDir, o.id, time.Unix(0, o.historyEpoch)); err != nil {
			return s, fmt.Errorf("history: %w", err)
		}
		game = collect.RecordingHandler(o.id, s.world, s.history)
		log.Info("recording the shard's effects for a chaos history", "file", s.history.Path())
	}
	cctx, cancel := context.WithTimeout(ctx, o.registerTimeout)
	defer cancel()
	if s.nc, err = o.nats.Connect(cctx, "shardmatch-shard-"+o.id, log); err != nil {
		return s, err
	}
	compact := o.compactEvery
	if compact == 0 {
		compact = -1 // --compact-every 0 keeps every record
	}
	// The shard SDK does the protocol's wiring: journal, participant, registration,
	// commands, recovery of in-doubt txns and compaction.
	if s.sh, err = shard.Start(cctx, shard.Config{ID: o.id, Conn: s.nc, Game: game, JournalPath: o.journal,
		Region: o.region, Capacity: o.players, Prefix: o.prefix, Logger: log, Clock: s.clk, CompactInterval: compact,
		RegisterTimeout: o.registerTimeout, Verifier: o.verifier, Faults: s.faults}); err != nil {
		return s, err
	}
	s.part, s.journal, s.cli = s.sh.Participant(), s.sh.Journal(), s.sh.Client()
	if adminLn != nil {
		h, err := s.adminHandler()
		if err != nil {
			return s, err
		}
		s.http = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := s.http.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				select {
				case s.fatal <- fmt.Errorf("admin http: %w", err):
				default:
				}
			}
		}()
	}
	if err := s.startBackground(); err != nil {
		return s, err
	}
	addr := ""
	if adminLn != nil {
		addr = adminLn.Addr().String()
	}
	log.Info("ready", "region", o.region, "players", o.players, "journal", o.journal, "admin_addr", addr,
		"nats", s.nc.ConnectedUrlRedacted(), "propose_rate", o.proposeRate)
	return s, nil
}

// startBackground runs the load driver, if asked for.
func (s *server) startBackground() error {
	if s.o.proposeRate > 0 {
		dc := shardsvc.DefaultLoadGenConfig()
		dc.Proposer, dc.Clock, dc.Seed = s.cli, s.clk, s.o.seed^config.IDSeed(s.o.id)
		dc.Rate, dc.MaxInFlight, dc.HotShare, dc.ViolationShare, dc.MatchTTL = s.o.proposeRate, s.o.inflight, s.o.hot, s.o.violations, s.o.matchTTL
		dc.Logger = s.log
		// The peers' worlds are stand-ins: a peer shard learns that a match ended only
		// when its TTL runs out, and refuses its players as IN_MATCH until then.
		dc.ReuseAfter = s.o.matchTTL
		worlds, err := s.driverWorlds()
		if err != nil {
			return err
		}
		dc.Worlds = worlds
		if s.driver, err = shardsvc.NewLoadGen(dc); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBg = cancel
	s.bgDone = make(chan struct{})
	go func() {
		defer close(s.bgDone)
		var driverDone chan struct{}
		if s.driver != nil {
			driverDone = make(chan struct{})
			go func() {
				defer close(driverDone)
				if err := s.driver.Run(ctx); err != nil {
					s.log.Warn("load driver stopped", "err", err)
				}
			}()
		}
		<-ctx.Done()
		if driverDone != nil {
			<-driverDone
		}
	}()
	return nil
}

// driverWorlds are the worlds the load driver picks players from: this shard's own
// World, and for every peer shard a stand-in World built from the same seed and
// player count. Player ids and attributes (MMR, latency) are a pure function of
// (seed, shard id, index, regions), so the stand-ins name the peers' real players with
// their real attributes; only their idea of who is idle is a guess, which the peer
// shard corrects by voting NO. Every shard of a deployment must therefore run with
// the same --seed and --players.
func (s *server) driverWorlds() ([]*shardsvc.World, error) {
	out := []*shardsvc.World{s.world}
	for _, p := range s.o.peers {
		wc := shardsvc.DefaultWorldConfig()
		wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = p.id, p.region, s.o.players, s.o.matchTTL, s.clk, s.o.seed
		w, err := shardsvc.NewWorld(wc)
		if err != nil {
			return nil, fmt.Errorf("stand-in world for peer %s: %w", p.id, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// shutdown stops the driver (its proposals in flight still need this shard's votes,
// so commands are served until it is done), drains the command consumer, stops the
// admin API and closes the client, the journal and NATS.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.drainTimeout)
	defer cancel()
	s.stopBg()
	select {
	case <-s.bgDone:
	case <-ctx.Done():
		s.log.Warn("load driver did not stop in time")
	}
	if s.sh != nil {
		s.sh.Stop(ctx) // drains the commands, closes its client and the journal
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
	}
	if s.nc != nil {
		if err := s.nc.Drain(); err != nil {
			s.nc.Close()
		}
		for !s.nc.IsClosed() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		s.nc.Close()
	}
	s.faults.Wait()
	if s.history != nil {
		s.history.CloseLogged(s.log)
	}
}
