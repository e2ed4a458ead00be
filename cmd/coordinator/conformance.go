package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
	"github.com/shardmatch/shardmatch/twophase/conformance"
)

// newConformanceCmd is `coordinator conformance`: the protocol harness against one
// shard, whatever its language.
func newConformanceCmd() *cobra.Command {
	var out *cli.OutputValue
	c := goFlagsCmd(&cobra.Command{
		Use:   "conformance --shard ID --players P1,P2,...",
		Short: "Check a shard implementation against the protocol, as a coordinator would",
		Long: "Play the coordinator against one shard over NATS and check it against docs/protocol.md:\n" +
			"registration, votes and acks, duplicates, Abort before Prepare, stale tokens and terms, release\n" +
			"on abort, malformed commands, a contradictory decision and, with --restart-cmd, recovery after a\n" +
			"restart. Start the harness first, then the shard, on a NATS server of their own (not one a\n" +
			"coordinator uses), against a shard under test: the harness's terms and tokens make a shard refuse\n" +
			"a real coordinator until it restarts. --players names " + fmt.Sprint(conformance.MinPlayers) + " or more players the shard accepts.\n" +
			"Exits 0 if every check passes, 1 if one fails.",
		Example: "  coordinator nats --addr 127.0.0.1:4333 --store /tmp/conf-nats &\n" +
			"  coordinator conformance --nats-url nats://127.0.0.1:4333 --shard s1 \\\n" +
			"      --players s1-p00000,s1-p00001,s1-p00002,s1-p00003,s1-p00004,s1-p00005,s1-p00006,s1-p00007 &\n" +
			"  shardsvc --id s1 --nats-url nats://127.0.0.1:4333 --journal /tmp/s1.journal --always-available",
		Args: cli.NoArgs,
	}, func(fs *flag.FlagSet) legacyRun {
		var n config.NATS
		n.Register(fs)
		shard := fs.String("shard", "", "the `id` of the shard under test")
		players := fs.String("players", "", "comma-separated `ids` of players the shard accepts, at least 8")
		prefix := fs.String("prefix", natsutil.DefaultPrefix, "NATS subject and stream `prefix`")
		replyTimeout := fs.Duration("reply-timeout", 10*time.Second, "how long to wait for each expected vote or ack")
		silence := fs.Duration("silence", 2*time.Second, "how long to listen to be sure no reply comes")
		registerTimeout := fs.Duration("register-timeout", time.Minute, "how long to wait for the shard to register (start it within this)")
		signingKey := fs.String("signing-key", "", "sign commands with the key in this `file`, for a shard that requires signatures")
		restartCmd := fs.String("restart-cmd", "", "shell `command` that restarts the shard (enables the recovery check)")
		verbose := fs.Bool("v", false, "log the run's progress to stderr")
		return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
			cfg := conformance.Config{ShardID: *shard, Prefix: *prefix, ReplyTimeout: *replyTimeout, Silence: *silence,
				RegisterTimeout: *registerTimeout}
			for _, p := range strings.Split(*players, ",") {
				if p = strings.TrimSpace(p); p != "" {
					cfg.Players = append(cfg.Players, p)
				}
			}
			switch {
			case *shard == "":
				fmt.Fprintln(stderr, "coordinator conformance: --shard is required")
				return 2
			case len(cfg.Players) < conformance.MinPlayers:
				fmt.Fprintf(stderr, "coordinator conformance: --players names %d players, want at least %d\n", len(cfg.Players), conformance.MinPlayers)
				return 2
			}
			if err := n.Validate(); err != nil {
				fmt.Fprintf(stderr, "coordinator conformance: %v\n", err)
				return 2
			}
			log := slog.New(slog.DiscardHandler)
			if *verbose {
				log = slog.New(slog.NewTextHandler(stderr, nil))
			}
			cfg.Logger = log
			if *signingKey != "" {
				b, err := os.ReadFile(*signingKey)
				if err == nil {
					cfg.Signer, err = cmdsig.NewSigner(b)
				}
				if err != nil {
					fmt.Fprintf(stderr, "coordinator conformance: --signing-key: %v\n", err)
					return 2
				}
			}
			if *restartCmd != "" {
				cfg.Restart = func(ctx context.Context) error {
					cmd := exec.CommandContext(ctx, "sh", "-c", *restartCmd)
					cmd.Stdout, cmd.Stderr = stderr, stderr
					return cmd.Run()
				}
			}
			nc, err := n.Connect(ctx, "shardmatch-conformance", log)
			if err != nil {
				fmt.Fprintf(stderr, "coordinator conformance: %v\n", err)
				return 1
			}
			defer nc.Close()
			cfg.Conn = nc
			rep, err := conformance.Run(ctx, cfg)
			if err != nil {
				fmt.Fprintf(stderr, "coordinator conformance: %v\n", err)
				return 1
			}
			if err := out.Print(stdout, rep, func(w io.Writer) error {
				tw := cli.NewTable(w)
				fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
				for _, r := range rep.Results {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Status, r.Detail)
				}
				return tw.Flush()
			}); err != nil {
				fmt.Fprintf(stderr, "coordinator conformance: %v\n", err)
				return 1
			}
			if !rep.Passed() {
				return 1
			}
			return 0
		}
	}, map[string]string{"v": "verbose"})
	out = cli.AddOutputFlag(c)
	return c
}
