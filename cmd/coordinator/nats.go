package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/natsembed"
)

// newNatsCmd is `coordinator nats`: an embedded NATS server with JetStream, alone or
// one of a cluster. It prints the client URL on stdout and runs until SIGINT or SIGTERM.
func newNatsCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "nats --store DIR",
		Short: "Run the embedded NATS server with JetStream alone, for multi-process use",
		Long: `Run an embedded NATS server with JetStream until SIGINT or SIGTERM; print its client URL.

Alone, it suits one machine (quick starts, tests). With --cluster-addr and --routes it is
one server of a NATS cluster and JetStream runs clustered: start three, each with its own
--name and --store and the same --routes (each may list itself) and --cluster-auth-file, and give
'coordinator serve' --stream-replicas 3 and --nats-url listing all three. With
--monitor-addr it serves NATS's HTTP monitoring: /healthz?js-enabled-only=true answers 200
once JetStream is on (the probes' path); /healthz once this server is also current with
the cluster, which a lone server of a cluster never is (start a cluster's servers together).

With --auth-dir (the server/ subdirectory of what 'coordinator nats-auth init' made: public
JWTs only, no seed; the whole directory works too) the server runs in operator (JWT) mode:
clients need credentials from 'coordinator nats-auth user', and each may use only its
role's subjects. Users are not part of the server's configuration, so credentials made
later (a new shard) work without a restart.

Routes are authenticated apart from clients: a clustered server needs --cluster-auth-file,
a file holding one line user:password, the same on every server of the cluster (e.g.
printf 'route:%s\n' "$(openssl rand -hex 24)" > routes.auth). The server accepts a route
only with those credentials and presents them on its own; a server with other credentials
or none cannot join, so it cannot publish past the clients' auth. The file is read at
start: to rotate, restart every server with the new file. --cluster-insecure runs
clustered without route authentication instead, for a cluster port no one else can
reach.`,
		Example: `  coordinator nats --addr 127.0.0.1:4222 --store ./data/nats
  coordinator nats --name nats-1 --store ./data/nats-1 --addr 127.0.0.1:4221 \
    --cluster-addr 127.0.0.1:6221 --cluster-auth-file ./routes.auth \
    --routes nats://127.0.0.1:6221,nats://127.0.0.1:6222,nats://127.0.0.1:6223`,
		Args: cli.NoArgs,
	}, defineNats, nil)
}

// natsFlags are `coordinator nats`'s settings as given.
type natsFlags struct {
	addr, store, name, logLevel      string
	clusterAddr, routes, clusterName string
	clusterAuthFile                  string
	clusterInsecure                  bool
	monitorAddr                      string
	authDir                          string
	syncAlways                       bool
	nameSet                          bool // --name was given (a clustered server must be named)
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:4222", "client `host:port` to listen on (port 0: any free port)")
	fs.StringVar(&f.store, "store", "", "JetStream store `directory` (required; reuse it to keep streams across restarts)")
	fs.StringVar(&f.name, "name", "shardmatch-nats", "server `name`; unique per server in a cluster, and the same across restarts (required with --routes)")
	fs.StringVar(&f.clusterAddr, "cluster-addr", "", "route `host:port` to listen on for the other servers of the cluster (with --routes; an empty host is --addr's)")
	fs.StringVar(&f.routes, "routes", "", "seed routes to the cluster's servers, comma-separated `nats://host:port` (may list this server); turns on clustering")
	fs.StringVar(&f.clusterName, "cluster-name", natsembed.DefaultClusterName, "cluster `name`, the same on every server")
	fs.StringVar(&f.clusterAuthFile, "cluster-auth-file", "", "route credentials: a `file` holding user:password, the same on every server (required with --routes unless --cluster-insecure)")
	fs.BoolVar(&f.clusterInsecure, "cluster-insecure", false, "run clustered without route credentials: whoever reaches --cluster-addr joins the cluster")
	fs.StringVar(&f.monitorAddr, "monitor-addr", "", "HTTP monitoring `host:port` (/healthz, /varz, /jsz...; an empty host is --addr's); empty: off")
	fs.StringVar(&f.authDir, "auth-dir", "", "operator mode: the `directory` DIR/server made by 'coordinator nats-auth init --out DIR' (public JWTs only; empty: no auth)")
	fs.BoolVar(&f.syncAlways, "sync-always", false, "fsync every JetStream write (slower; survives OS crashes)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log `level`: debug, info, warn, error or off")
}

// embeddedConfig checks the flags and turns them into the server's configuration.
// Its errors are one line, naming the flag.
func (f *natsFlags) embeddedConfig() (natsembed.EmbeddedConfig, error) {
	cfg := natsembed.EmbeddedConfig{StoreDir: f.store, ServerName: f.name, SyncAlways: f.syncAlways}
	if f.store == "" {
		return cfg, errors.New("--store is required")
	}
	if strings.ContainsAny(f.name, " \t\r\n") {
		return cfg, fmt.Errorf("--name %q contains white space", f.name)
	}
	var err error
	if cfg.Host, cfg.Port, err = parseListen("--addr", f.addr); err != nil {
		return cfg, err
	}
	if f.monitorAddr != "" {
		if cfg.MonitorHost, cfg.MonitorPort, err = parseListen("--monitor-addr", f.monitorAddr); err != nil {
			return cfg, err
		}
	}
	switch {
	case f.routes == "" && f.clusterAuthFile != "":
		return cfg, errors.New("--cluster-auth-file needs --routes (route credentials are for a cluster)")
	case f.routes == "" && f.clusterInsecure:
		return cfg, errors.New("--cluster-insecure needs --routes")
	case f.routes == "" && f.clusterAddr != "":
		return cfg, errors.New("--cluster-addr needs --routes (the cluster's route URLs; they may list this server)")
	case f.routes == "":
		return cfg, nil
	case f.clusterAddr == "":
		return cfg, errors.New("--routes needs --cluster-addr (where this server listens for routes)")
	case !f.nameSet:
		return cfg, errors.New("--routes needs --name, unique per server and the same across its restarts")
	case f.clusterName == "":
		return cfg, errors.New("--cluster-name is empty: a cluster needs a name")
	case strings.ContainsAny(f.clusterName, " \t\r\n"):
		return cfg, fmt.Errorf("--cluster-name %q contains white space", f.clusterName)
	case f.clusterAuthFile != "" && f.clusterInsecure:
		return cfg, errors.New("--cluster-auth-file and --cluster-insecure exclude each other")
	case f.clusterAuthFile == "" && !f.clusterInsecure:
		return cfg, errRoutesUnauthenticated
	}
	c := &cfg.Cluster
	c.Name = f.clusterName
	if c.Host, c.Port, err = parseListen("--cluster-addr", f.clusterAddr); err != nil {
		return cfg, err
	}
	if c.Routes, err = natsembed.ParseRoutes(f.routes); err != nil {
		return cfg, fmt.Errorf("--routes: %w", unwrapConfig(err))
	}
	for _, u := range c.Routes {
		if u.User != nil { // argv is readable by every local user (ps, /proc)
			return cfg, fmt.Errorf("--routes: route %q has credentials in it: put them in --cluster-auth-file", u.Redacted())
		}
	}
	if f.clusterAuthFile != "" {
		if c.Username, c.Password, err = readClusterAuth(f.clusterAuthFile); err != nil {
			return cfg, fmt.Errorf("--cluster-auth-file: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, unwrapConfig(err)
	}
	return cfg, nil
}

// errRoutesUnauthenticated: clustered, with neither route credentials nor the explicit
// choice to go without.
var errRoutesUnauthenticated = errors.New("--routes needs --cluster-auth-file (route credentials, user:password; " +
	"without them anyone who reaches --cluster-addr joins the cluster), or --cluster-insecure to run so knowingly")

// readClusterAuth reads the route credentials: one line user:password (a final
// newline is fine). The user may not hold ':', neither may hold white space or control
// characters, and the password may not start with "$2" (nats-server would take it for
// a bcrypt hash). Its errors never quote the file's content.
func readClusterAuth(path string) (user, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	user, password, ok := strings.Cut(line, ":")
	switch {
	case !ok || user == "" || password == "":
		return "", "", fmt.Errorf("%s: want one line user:password", path)
	case strings.ContainsFunc(line, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "", "", fmt.Errorf("%s: white space or a control character in user:password (one line, nothing else)", path)
	case strings.HasPrefix(password, "$2"):
		return "", "", fmt.Errorf("%s: the password starts with $2, which NATS reads as a bcrypt hash", path)
	}
	return user, password, nil
}

// parseListen parses a listen address; port 0 is any free port.
func parseListen(flagName, addr string) (string, int, error) {
	host, port, err := natsembed.ParseHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q is not host:port", flagName, addr)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// unwrapConfig drops the "natsutil: invalid embedded server config: " prefix: the
// command's message names the flag instead.
func unwrapConfig(err error) error {
	prefix := natsembed.ErrEmbeddedConfig.Error() + ": "
	if msg, ok := strings.CutPrefix(err.Error(), prefix); ok {
		return errors.New(msg)
	}
	return err
}

func defineNats(fs *flag.FlagSet) legacyRun {
	var f natsFlags
	f.register(fs)
	return func(_ context.Context, _ []string, stdout, stderr io.Writer) int {
		fs.Visit(func(fl *flag.Flag) { f.nameSet = f.nameSet || fl.Name == "name" })
		return runNats(&f, stdout, stderr)
	}
}

// runNats runs the server f describes until SIGINT or SIGTERM.
func runNats(f *natsFlags, stdout, stderr io.Writer) int {
	cfg, err := f.embeddedConfig()
	if err != nil {
		fmt.Fprintf(stderr, "coordinator nats: %v\n", err)
		return 2
	}
	if f.authDir != "" {
		d, err := natsauth.LoadServerTrust(f.authDir)
		if err != nil {
			fmt.Fprintf(stderr, "coordinator nats: --auth-dir: %v\n", err)
			return 2
		}
		cfg.Configure = d.ConfigureServer
	}
	log, err := config.NewLogger(stderr, f.logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "coordinator nats: %v\n", err)
		return 2
	}
	if f.logLevel == "warn" || f.logLevel == "error" || f.logLevel == "off" {
		log = nil // the server's notices are info; keep it quiet
	}
	cfg.Logger = log
	if f.clusterInsecure {
		fmt.Fprintln(stderr, "coordinator nats: warning: --cluster-insecure: the routes are not authenticated; "+
			"whoever reaches --cluster-addr can join the cluster and publish past client auth")
	}
	// Signals are caught before the server starts, so none is missed.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	s, err := natsembed.StartEmbedded(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator nats: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, s.ClientURL())
	if log != nil {
		log.Info("nats serving", "client", s.ClientURL(), "cluster", cfg.Cluster.Name,
			"cluster_port", natsembed.ClusterPort(s), "monitor", natsembed.MonitorURL(s))
	}
	<-sig
	natsembed.Shutdown(s)
	return 0
}
