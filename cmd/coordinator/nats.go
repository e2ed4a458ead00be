package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// runNats is `coordinator nats`: an embedded NATS server with JetStream, alone, for
// deployments of several processes on one machine (quick starts, tests). It prints
// the client URL on stdout and runs until SIGINT or SIGTERM.
func runNats(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:4222", "`host:port` to listen on (port 0: any free port)")
	store := fs.String("store", "", "JetStream store `directory` (required; reuse it to keep streams across restarts)")
	name := fs.String("name", "shardmatch-nats", "server `name`")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write (slower; survives OS crashes)")
	logLevel := fs.String("log-level", "warn", "log `level`: debug, info, warn, error or off")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator nats --store DIR [--addr host:port]\n\n"+
			"Run an embedded NATS server with JetStream until Ctrl-C; prints its URL.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	host, portStr, err := net.SplitHostPort(*addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port < 0 || port > 65535 {
		fmt.Fprintf(stderr, "coordinator nats: --addr %q is not host:port\n", *addr)
		return 2
	}
	if *store == "" {
		fmt.Fprintln(stderr, "coordinator nats: --store is required")
		return 2
	}
	log, err := config.NewLogger(stderr, *logLevel, "text")
	if err != nil {
		fmt.Fprintf(stderr, "coordinator nats: %v\n", err)
		return 2
	}
	if *logLevel == "warn" || *logLevel == "error" || *logLevel == "off" {
		log = nil // the server's notices are info; keep it quiet
	}
	if port == 0 {
		port = -1
	}
	// Signals are caught before the server starts, so none is missed.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	s, err := natsutil.StartEmbedded(natsutil.EmbeddedConfig{StoreDir: *store, Host: host, Port: port, ServerName: *name,
		SyncAlways: *syncAlways, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "coordinator nats: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, s.ClientURL())
	<-sig
	natsutil.Shutdown(s)
	return 0
}
