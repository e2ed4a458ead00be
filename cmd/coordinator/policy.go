package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/policy"
)

// newPolicyCmd is `coordinator policy test|eval`.
// defaultPolicyTimeout bounds one policy evaluation in serve, dev and policy eval: long
// enough for a large bundle on a loaded node, and far below a proposal's deadline.
const defaultPolicyTimeout = 250 * time.Millisecond

func newPolicyCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "policy",
		Short: "Run the policy bundle's tests, or explain its verdict on a proposal",
		Example: "  coordinator policy test\n" +
			"  coordinator policy eval -i policy/testdata/proposal-deny.json",
	})
	test := goFlagsCmd(&cobra.Command{
		Use:     "test",
		Short:   "Run the policy bundle's Rego tests",
		Long:    "Run the Rego tests of the policy bundle (--bundle, default the embedded one). Exits 1 if one fails.",
		Example: "  coordinator policy test\n  coordinator policy test --bundle ./policy -v",
		Args:    cli.NoArgs,
	}, func(fs *flag.FlagSet) legacyRun {
		var o policy.TestOptions
		fs.StringVar(&o.BundleDir, "bundle", "", "policy bundle `directory` (default: the embedded default bundle)")
		fs.BoolVar(&o.Verbose, "v", false, "list every test, not only the failures")
		return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
			return policy.RunTestWith(ctx, o, stdout, stderr)
		}
	}, map[string]string{"v": "verbose"})
	var evalOpts policy.EvalOptions
	var evalOut *cli.OutputValue
	eval := goFlagsCmd(&cobra.Command{
		Use:   "eval -i FILE",
		Short: "Explain the policy's verdict on a proposal",
		Long: "Evaluate the policy bundle on a proposal (protojson Proposal, or {\"proposal\":…, \"shards\":[…]})\n" +
			"and explain the verdict. Exits 0 if allowed, 1 if denied.",
		Example: "  coordinator policy eval -i policy/testdata/proposal-deny.json\n" +
			"  coordinator policy eval -i proposal.json -o json --show-input",
		Args: cli.NoArgs,
	}, func(fs *flag.FlagSet) legacyRun {
		fs.StringVar(&evalOpts.BundleDir, "bundle", "", "policy bundle `directory` (default: the embedded default bundle)")
		fs.StringVar(&evalOpts.InputPath, "i", "", "proposal `file` (protojson Proposal, or {\"proposal\":…, \"shards\":[…]}); - reads stdin")
		fs.BoolVar(&evalOpts.JSON, "json", false, "print the verdict as JSON")
		fs.BoolVar(&evalOpts.ShowInput, "show-input", false, "also print the input document the policy sees, to stderr")
		fs.DurationVar(&evalOpts.Timeout, "timeout", defaultPolicyTimeout, "evaluation timeout (serve's and dev's --policy-timeout default)")
		return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
			o := evalOpts
			switch evalOut.Format {
			case cli.JSON:
				o.JSON = true
			case cli.YAML:
				// The verdict's JSON form, as YAML.
				o.JSON = true
				var buf bytes.Buffer
				code := policy.RunEvalWith(ctx, o, &buf, stderr)
				y, err := yaml.JSONToYAML(buf.Bytes())
				if err != nil {
					fmt.Fprintf(stderr, "coordinator policy eval: %v\n", err)
					return 1
				}
				_, _ = stdout.Write(y)
				return code
			}
			return policy.RunEvalWith(ctx, o, stdout, stderr)
		}
	}, map[string]string{"i": "input"})
	evalOut = cli.AddOutputFlag(eval)
	cli.Deprecate(eval.Flags(), "json", "-o json")
	c.AddCommand(test, eval)
	return c
}
