package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/shardmatch/shardmatch/policy"
)

// runPolicy implements `coordinator policy test` and `coordinator policy eval`.
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: coordinator policy test [--bundle DIR] [-v]\n" +
		"       coordinator policy eval [--bundle DIR] -i FILE [--json] [--show-input]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "test":
		fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var o policy.TestOptions
		fs.StringVar(&o.BundleDir, "bundle", "", "policy bundle `directory` (default: the embedded default bundle)")
		fs.BoolVar(&o.Verbose, "v", false, "list every test, not only the failures")
		if code, done := parseFlags(fs, args[1:]); done {
			return code
		}
		return policy.RunTestWith(ctx, o, stdout, stderr)
	case "eval":
		fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var o policy.EvalOptions
		fs.StringVar(&o.BundleDir, "bundle", "", "policy bundle `directory` (default: the embedded default bundle)")
		fs.StringVar(&o.InputPath, "i", "", "proposal `file` (protojson Proposal, or {\"proposal\":…, \"shards\":[…]}); - reads stdin")
		fs.BoolVar(&o.JSON, "json", false, "print the verdict as JSON")
		fs.BoolVar(&o.ShowInput, "show-input", false, "also print the input document the policy sees, to stderr")
		fs.DurationVar(&o.Timeout, "timeout", 0, "evaluation timeout (default: the coordinator's, "+policy.DefaultEvalTimeout.String()+")")
		if code, done := parseFlags(fs, args[1:]); done {
			return code
		}
		return policy.RunEvalWith(ctx, o, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "coordinator policy: unknown subcommand %q\n%s\n", args[0], usage)
	return 2
}

// parseFlags parses args into fs, rejecting positional arguments. done reports that
// the command must exit with code: 0 after -h, 2 after a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}
