package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Exit codes of RunTest and RunEval.
const (
	ExitOK    = 0 // tests passed; the proposal is allowed
	ExitFail  = 1 // a test failed; the proposal is denied
	ExitError = 2 // the bundle or the input could not be used, or evaluation failed
)

// TestOptions configures RunTestWith.
type TestOptions struct {
	BundleDir string // empty: the embedded default bundle
	Verbose   bool   // list every test, not only the failures
}

// RunTest implements `coordinator policy test [--bundle DIR]`: it runs the
// bundle's Rego tests and reports failures on stdout. It returns ExitOK when
// every test passes, ExitFail when one fails and ExitError when the bundle
// cannot be loaded (including when it would not load into an Engine).
func RunTest(ctx context.Context, bundleDir string, stdout, stderr io.Writer) int {
	return RunTestWith(ctx, TestOptions{BundleDir: bundleDir}, stdout, stderr)
}

// RunTestWith is RunTest with options.
func RunTestWith(ctx context.Context, o TestOptions, stdout, stderr io.Writer) int {
	rep, err := TestBundle(ctx, o.BundleDir)
	if err != nil {
		fmt.Fprintf(stderr, "policy test: %v\n", err)
		return ExitError
	}
	for _, r := range rep.Results {
		switch {
		case r.Skip:
			if o.Verbose {
				fmt.Fprintf(stdout, "SKIP  %s (%s)\n", r.Name, r.Location)
			}
		case r.Pass:
			if o.Verbose {
				fmt.Fprintf(stdout, "PASS  %s (%s)\n", r.Name, r.Duration.Round(time.Microsecond))
			}
		default:
			fmt.Fprintf(stdout, "FAIL  %s (%s)\n", r.Name, r.Location)
			if r.Err != nil {
				fmt.Fprintf(stdout, "      error: %v\n", r.Err)
			}
			for _, line := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
				if line != "" {
					fmt.Fprintf(stdout, "      print: %s\n", line)
				}
			}
		}
	}
	pass, fail, skip := rep.Counts()
	status := "PASS"
	if fail > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(stdout, "%s: %d/%d passed", status, pass, pass+fail)
	if skip > 0 {
		fmt.Fprintf(stdout, ", %d skipped", skip)
	}
	fmt.Fprintf(stdout, " (bundle %s, revision %s)\n", rep.Source, rep.Revision)
	if pass+fail == 0 {
		fmt.Fprintln(stderr, "policy test: warning: the bundle has no tests (rules named test_*)")
	}
	if fail > 0 {
		return ExitFail
	}
	return ExitOK
}

// EvalOptions configures RunEvalWith.
type EvalOptions struct {
	BundleDir string // empty: the embedded default bundle
	// InputPath names the proposal file; "-" reads Stdin. See ReadEvalInput for
	// the format.
	InputPath string
	Stdin     io.Reader
	// JSON prints the verdict as protojson instead of text.
	JSON bool
	// ShowInput also prints the input document the policy sees (proposal,
	// queue, shards, facts), to stderr: what a Rego test needs to reproduce
	// the verdict.
	ShowInput bool
	// Timeout bounds the evaluation; zero means DefaultEvalTimeout, as in the
	// coordinator.
	Timeout time.Duration
}

// RunEval implements `coordinator policy eval --bundle DIR -i proposal.json`:
// it evaluates the proposal in inputPath with the bundle in bundleDir (empty:
// the embedded default) exactly as the coordinator would, and prints the
// verdict with every denial explained. It returns ExitOK for allow, ExitFail
// for deny and ExitError when the bundle or the input cannot be used or the
// policy cannot be evaluated.
func RunEval(ctx context.Context, bundleDir, inputPath string, stdout, stderr io.Writer) int {
	return RunEvalWith(ctx, EvalOptions{BundleDir: bundleDir, InputPath: inputPath}, stdout, stderr)
}

// RunEvalWith is RunEval with options.
func RunEvalWith(ctx context.Context, o EvalOptions, stdout, stderr io.Writer) int {
	var raw []byte
	var err error
	switch o.InputPath {
	case "":
		fmt.Fprintln(stderr, "policy eval: no input: give -i proposal.json (or - for stdin)")
		return ExitError
	case "-":
		if o.Stdin == nil {
			o.Stdin = os.Stdin
		}
		raw, err = io.ReadAll(o.Stdin)
	default:
		raw, err = os.ReadFile(o.InputPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "policy eval: %v\n", err)
		return ExitError
	}
	p, shards, err := ReadEvalInput(raw)
	if err != nil {
		fmt.Fprintf(stderr, "policy eval: %s: %v\n", o.InputPath, err)
		return ExitError
	}
	e, err := New(Config{BundleDir: o.BundleDir, EvalTimeout: o.Timeout})
	if err != nil {
		fmt.Fprintf(stderr, "policy eval: %v\n", err)
		return ExitError
	}
	if o.ShowInput {
		doc, err := e.InputDocument(p, shards)
		if err == nil {
			var bs []byte
			if bs, err = json.MarshalIndent(doc, "", "  "); err == nil {
				fmt.Fprintf(stderr, "input document:\n%s\n", bs)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "policy eval: input document: %v\n", err)
		}
	}
	start := time.Now()
	v, evalErr := e.Evaluate(ctx, p, shards)
	took := time.Since(start)
	if o.JSON {
		bs, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(v)
		var out bytes.Buffer
		if err == nil {
			err = json.Indent(&out, bs, "", "  ") // stable layout: protojson varies its spacing
		}
		if err != nil {
			fmt.Fprintf(stderr, "policy eval: %v\n", err)
			return ExitError
		}
		fmt.Fprintln(stdout, out.String())
	} else {
		printVerdict(stdout, p, v, e.source, took)
	}
	switch {
	case evalErr != nil:
		fmt.Fprintf(stderr, "policy eval: %v\n", evalErr)
		return ExitError
	case v.GetAllow():
		return ExitOK
	default:
		return ExitFail
	}
}

// ReadEvalInput reads what `coordinator policy eval` evaluates: either a bare
// Proposal in protojson (the JSON mapping of shardmatch.v1.Proposal, field
// names in lowerCamelCase or as in the .proto), or an object
//
//	{"proposal": {...Proposal...}, "shards": [{...ShardInfo...}, ...]}
//
// that also gives the shard metadata the coordinator would pass. Unknown fields
// are errors, so that a misspelt field does not silently read as its default.
func ReadEvalInput(raw []byte) (*smv1.Proposal, []*smv1.ShardInfo, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	p := &smv1.Proposal{}
	pr, envelope := top["proposal"]
	if !envelope {
		if err := protojson.Unmarshal(raw, p); err != nil {
			return nil, nil, fmt.Errorf("proposal: %w", err)
		}
		return p, nil, nil
	}
	for k := range top {
		if k != "proposal" && k != "shards" {
			return nil, nil, fmt.Errorf("unknown field %q (want \"proposal\" and \"shards\")", k)
		}
	}
	if err := protojson.Unmarshal(pr, p); err != nil {
		return nil, nil, fmt.Errorf("proposal: %w", err)
	}
	var rawShards []json.RawMessage
	if s, ok := top["shards"]; ok && !bytes.Equal(bytes.TrimSpace(s), []byte("null")) {
		if err := json.Unmarshal(s, &rawShards); err != nil {
			return nil, nil, fmt.Errorf("shards: want an array: %w", err)
		}
	}
	shards := make([]*smv1.ShardInfo, len(rawShards))
	for i, r := range rawShards {
		shards[i] = &smv1.ShardInfo{}
		if err := protojson.Unmarshal(r, shards[i]); err != nil {
			return nil, nil, fmt.Errorf("shards[%d]: %w", i, err)
		}
	}
	return p, shards, nil
}

// printVerdict explains a verdict for people.
func printVerdict(w io.Writer, p *smv1.Proposal, v *smv1.PolicyVerdict, source string, took time.Duration) {
	n := 0
	for _, t := range p.GetTeams() {
		n += len(t.GetPlayers())
	}
	verdict := "ALLOW"
	if !v.GetAllow() {
		verdict = "DENY"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "verdict:\t%s\n", verdict)
	fmt.Fprintf(tw, "proposal:\t%q, mode %q, %d teams, %d players\n", p.GetProposalId(), p.GetMode(), len(p.GetTeams()), n)
	fmt.Fprintf(tw, "policy:\t%s (bundle %s)\n", v.GetRevision(), source)
	fmt.Fprintf(tw, "evaluated in:\t%s\n", took.Round(time.Microsecond))
	_ = tw.Flush()
	if v.GetAllow() {
		fmt.Fprintln(w, "\nno rule objected.")
		return
	}
	fmt.Fprintf(w, "\n%d denial(s):\n", len(v.GetDenials()))
	for i, d := range v.GetDenials() {
		fmt.Fprintf(w, "  %d. %s\n     %s\n", i+1, d.GetCode(), d.GetMessage())
		if len(d.GetPlayers()) > 0 {
			fmt.Fprintf(w, "     players: %s\n", strings.Join(d.GetPlayers(), ", "))
		}
	}
}
