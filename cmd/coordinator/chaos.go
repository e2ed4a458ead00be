package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"

	"github.com/shardmatch/shardmatch/chaos/netns"
	"github.com/shardmatch/shardmatch/chaos/runner"
	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// chaosSweep removes what interrupted chaos runs left; tests replace it.
var chaosSweep = netns.Sweep

// newChaosCmd is `coordinator chaos list|run|clean`.
func newChaosCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "chaos",
		Short: "Run chaos scenarios against real processes and report",
		Long: "Run chaos scenarios against real processes in network namespaces (needs root), check the\n" +
			"invariants and write reports; list the shipped scenarios; clean up after interrupted runs.",
		Example: "  coordinator chaos list\n  coordinator chaos run leader-partition --seed 11\n  coordinator chaos clean",
	})
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the shipped scenarios",
		Example: "  coordinator chaos list",
		Args:    cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return cli.Exit(chaosList(c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	run := goFlagsCmd(&cobra.Command{
		Use:   "run [flags] SCENARIO...",
		Short: "Run scenarios (names from list, or YAML files) and write reports",
		Long: "Run each scenario (a name from `coordinator chaos list`, or a YAML file) against real\n" +
			"processes in network namespaces (needs root), check the invariants I1-I7 and write\n" +
			"report.json, report.md, timeline.svg and history.json. Exit 0 if every run passes,\n" +
			"1 if any fails, 2 if a run could not be made.",
		Example: "  coordinator chaos run leader-partition\n  coordinator chaos run --seeds 5 clock-skew-forward\n" +
			"  coordinator chaos run my-scenario.yaml --secure",
		Args: cli.MinimumArgs(1, "SCENARIO"),
	}, defineChaosRun, map[string]string{"v": "verbose"})
	clean := &cobra.Command{
		Use:   "clean",
		Short: "Remove namespaces, links and nftables tables left by interrupted runs",
		Long: "Remove every shardmatch network namespace, link and nftables table left by interrupted runs\n" +
			"(runs in progress included: run it when none is). Needs root.",
		Example: "  coordinator chaos clean",
		Args:    cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			removed, err := chaosSweep(c.Context(), "")
			for _, r := range removed {
				fmt.Fprintln(c.OutOrStdout(), "removed", r)
			}
			if err != nil && errors.Is(err, netns.ErrNotRoot) {
				return cli.Usagef("%v", err)
			}
			return err
		},
	}
	c.AddCommand(list, run, clean)
	return c
}

func chaosList(stdout, stderr io.Writer) int {
	all, err := scenario.Builtin()
	if err != nil {
		fmt.Fprintf(stderr, "coordinator chaos list: %v\n", err)
		return 1
	}
	for _, name := range scenario.BuiltinNames() {
		s := all[name]
		tag := ""
		if s.Unsafe != "" {
			tag = " [checker bites: unsafe " + s.Unsafe + "]"
		}
		fmt.Fprintf(stdout, "%-28s %s%s\n", name, s.Description, tag)
	}
	return 0
}

func defineChaosRun(fs *flag.FlagSet) legacyRun {
	seed := fs.Int64("seed", 1, "seed of the first run; runs are replayable by seed")
	seeds := fs.Int("seeds", 1, "runs per scenario, with seeds seed, seed+1, ...")
	reportDir := fs.String("report", "chaos-reports", "`directory` for the reports: one <scenario>-<seed>/ per run")
	keep := fs.Bool("keep-work", false, "keep each run's process logs and data even when it passes")
	shardsvcBin := fs.String("shardsvc-bin", "", "shardsvc `binary` (default: beside this one, else built with go build)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	secure := fs.Bool("secure", false, "run every process secured: NATS JWT auth with per-role credentials, signed commands (as `coordinator dev --secure`)")
	verbose := fs.Bool("v", false, "log the runner's own steps to stderr")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if *seeds < 1 {
			fmt.Fprintln(stderr, "coordinator chaos run: --seeds must be >= 1")
			return 2
		}
		return chaosRun(ctx, chaosRunOptions{seed: *seed, seeds: *seeds, reportDir: *reportDir, keep: *keep,
			shardsvcBin: *shardsvcBin, quiet: *quiet, secure: *secure, verbose: *verbose}, args, stdout, stderr)
	}
}

// chaosRunOptions are `chaos run`'s flags.
type chaosRunOptions struct {
	seed                   int64
	seeds                  int
	reportDir, shardsvcBin string
	keep, quiet, secure    bool
	verbose                bool
}

func chaosRun(ctx context.Context, o chaosRunOptions, names []string, stdout, stderr io.Writer) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "coordinator chaos run: needs root (network namespaces and nftables); run it as root or in CI")
		return 2
	}
	var scs []*scenario.Scenario
	for _, name := range names {
		s, err := scenario.Lookup(name)
		if err != nil {
			fmt.Fprintf(stderr, "coordinator chaos run: %v\n", err)
			return 2
		}
		scs = append(scs, s)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	var progress io.Writer = stdout
	if o.quiet {
		progress = nil
	}
	code := 0
	for _, s := range scs {
		for k := 0; k < o.seeds; k++ {
			sd := o.seed + int64(k)
			dir := filepath.Join(o.reportDir, fmt.Sprintf("%s-%d", s.Name, sd))
			fmt.Fprintf(stdout, "=== %s seed %d -> %s\n", s.Name, sd, dir)
			res, err := runner.Run(ctx, runner.Config{Scenario: s, Seed: sd, ReportDir: dir, KeepWork: o.keep,
				ShardsvcBin: o.shardsvcBin, Progress: progress, Logger: log, Secure: o.secure})
			if err != nil {
				fmt.Fprintf(stderr, "coordinator chaos run: %s seed %d: %v\n", s.Name, sd, err)
				if ctx.Err() != nil {
					return 2
				}
				code = max(code, 2)
				continue
			}
			fmt.Fprintf(stdout, "%s seed %d: %s\n", s.Name, sd, res.Summary.Line())
			if !res.Summary.Pass || len(res.Errors) > 0 {
				code = max(code, 1)
			}
		}
	}
	return code
}
