package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestReport is the outcome of running a bundle's Rego tests.
type TestReport struct {
	Source   string // the bundle directory, or "embedded:default"
	Revision string // the bundle's revision, as an Engine would report it
	Results  []TestResult
}

// TestResult is one Rego test (a rule named test_*).
type TestResult struct {
	Name     string // e.g. data.shardmatch_test.test_short_team
	Location string // file:line of the test rule
	Pass     bool
	Skip     bool   // rules named todo_test_* are skipped
	Err      error  // set when the test failed with an error rather than false
	Output   string // what the test print()ed
	Duration time.Duration
}

// Passed reports whether every test that ran passed.
func (r *TestReport) Passed() bool {
	for _, t := range r.Results {
		if !t.Pass && !t.Skip {
			return false
		}
	}
	return true
}

// Counts returns how many tests passed, failed and were skipped.
func (r *TestReport) Counts() (pass, fail, skip int) {
	for _, t := range r.Results {
		switch {
		case t.Skip:
			skip++
		case t.Pass:
			pass++
		default:
			fail++
		}
	}
	return pass, fail, skip
}

// TestBundle runs the Rego tests of the bundle in bundleDir (empty: the embedded
// default bundle) with OPA's tester, with built-in errors raised as failures (as
// the engine treats them as errors too). Before the tests it loads the bundle as
// an Engine would, so a bundle that would be refused at load time fails here
// (wrapping ErrBundle) even if its tests pass. The error is only for a bundle
// that cannot be tested at all; failing tests are in the report.
func TestBundle(ctx context.Context, bundleDir string) (*TestReport, error) {
	fsys, source, err := bundleFS(bundleDir)
	if err != nil {
		return nil, err
	}
	s, err := readSnapshot(fsys, source)
	if err != nil {
		return nil, err
	}
	c, err := compile(ctx, s, time.Now())
	if err != nil {
		return nil, err
	}
	b, err := parseBundle(s)
	if err != nil {
		return nil, err
	}
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		modules[m.Path] = m.Parsed
	}
	store := inmem.NewFromObjectWithOpts(b.Data, inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		SetParallel(runtime.GOMAXPROCS(0)).
		SetTimeout(30*time.Second).
		RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, source, err)
	}
	rep := &TestReport{Source: source, Revision: c.revision}
	for r := range ch {
		tr := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Err:      r.Error,
			Output:   string(r.Output),
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		rep.Results = append(rep.Results, tr)
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	slices.SortFunc(rep.Results, func(a, b TestResult) int { return strings.Compare(a.Name, b.Name) })
	return rep, nil
}

// bundleFS opens a bundle directory, or the embedded default for "".
func bundleFS(dir string) (fs.FS, string, error) {
	if dir == "" {
		return DefaultBundle(), "embedded:default", nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if !fi.IsDir() {
		return nil, "", fmt.Errorf("%w: %s is not a directory", ErrBundle, dir)
	}
	return os.DirFS(dir), dir, nil
}
