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

	"github.com/shardmatch/shardmatch/chaos/netns"
	"github.com/shardmatch/shardmatch/chaos/runner"
	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// runChaos is `coordinator chaos list|run|clean`.
func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: coordinator chaos list | run [flags] SCENARIO... | clean")
		return 2
	}
	switch args[0] {
	case "list":
		return chaosList(stdout, stderr)
	case "run":
		return chaosRun(ctx, args[1:], stdout, stderr)
	case "clean":
		removed, err := netns.Sweep(ctx, "")
		for _, r := range removed {
			fmt.Fprintln(stdout, "removed", r)
		}
		if err != nil {
			fmt.Fprintf(stderr, "coordinator chaos clean: %v\n", err)
			if errors.Is(err, netns.ErrNotRoot) {
				return 2
			}
			return 1
		}
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, "usage: coordinator chaos list | run [flags] SCENARIO... | clean\n\n"+
			"  list   the shipped scenarios\n  run    run scenarios (names from list, or YAML files) and write reports\n"+
			"  clean  remove namespaces, links and nftables tables left by interrupted runs")
		return 0
	}
	fmt.Fprintf(stderr, "coordinator chaos: unknown subcommand %q\n", args[0])
	return 2
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

func chaosRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator chaos run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "seed of the first run; runs are replayable by seed")
	seeds := fs.Int("seeds", 1, "runs per scenario, with seeds seed, seed+1, ...")
	reportDir := fs.String("report", "chaos-reports", "`directory` for the reports: one <scenario>-<seed>/ per run")
	keep := fs.Bool("keep-work", false, "keep each run's process logs and data even when it passes")
	shardsvcBin := fs.String("shardsvc-bin", "", "shardsvc `binary` (default: beside this one, else built with go build)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	secure := fs.Bool("secure", false, "run every process secured: NATS JWT auth with per-role credentials, signed commands (as `coordinator dev --secure`)")
	verbose := fs.Bool("v", false, "log the runner's own steps to stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coordinator chaos run [flags] SCENARIO...\n\n"+
			"Run each scenario (a name from `coordinator chaos list`, or a YAML file) against real\n"+
			"processes in network namespaces (needs root), check the invariants I1-I7 and write\n"+
			"report.json, report.md, timeline.svg and history.json. Exit 0 if every run passes,\n"+
			"1 if any fails, 2 if a run could not be made.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 || *seeds < 1 {
		fs.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "coordinator chaos run: needs root (network namespaces and nftables); run it as root or in CI")
		return 2
	}
	var scs []*scenario.Scenario
	for _, name := range fs.Args() {
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
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	var progress io.Writer = stdout
	if *quiet {
		progress = nil
	}
	code := 0
	for _, s := range scs {
		for k := 0; k < *seeds; k++ {
			sd := *seed + int64(k)
			dir := filepath.Join(*reportDir, fmt.Sprintf("%s-%d", s.Name, sd))
			fmt.Fprintf(stdout, "=== %s seed %d -> %s\n", s.Name, sd, dir)
			res, err := runner.Run(ctx, runner.Config{Scenario: s, Seed: sd, ReportDir: dir, KeepWork: *keep,
				ShardsvcBin: *shardsvcBin, Progress: progress, Logger: log, Secure: *secure})
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
