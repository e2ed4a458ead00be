package policy

import (
	"time"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Engine evaluates match proposals against a policy bundle. It is safe for
// concurrent use: any number of Evaluate calls may run while a reload happens.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	clock  clock.Clock
	fsys   fs.FS // the bundle: os.DirFS(BundleDir) or the embedded default
	source string

	// cur is the bundle version new evaluations use. An evaluation loads it
	// once and uses that version to the end.
	cur atomic.Pointer[compiled]

	// reloadMu serialises reloads; it guards the fields below it. It is never
	// held by Evaluate.
	reloadMu          sync.Mutex
	loadedFingerprint string // of the last snapshot that loaded (changed or not)
	failedFingerprint string // of the last snapshot that failed to load

	stats stats
}

// New loads and compiles the bundle named by cfg. It fails (wrapping ErrBundle
// or ErrConfig) if there is no usable policy: an engine always has one.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, clock: cfg.Clock}
	if e.fsys, e.source, err = bundleFS(cfg.BundleDir); err != nil {
		return nil, err
	}
	c, _, err := e.load(context.Background())
	if err != nil {
		return nil, err
	}
	e.cur.Store(c)
	e.loadedFingerprint = c.fingerprint
	e.log.Info("policy loaded", "bundle", e.source, "revision", c.revision)
	return e, nil
}

// load reads and compiles the bundle as it is on disk now. It also returns the
// fingerprint of what it read ("" if it could not read it), failed or not.
func (e *Engine) load(ctx context.Context) (*compiled, string, error) {
	s, err := readSnapshot(e.fsys, e.source)
	if err != nil {
		return nil, "", err
	}
	c, err := compile(ctx, s, e.clock.Now())
	return c, s.fingerprint, err
}

// Revision names the bundle version new evaluations use: "sha256:" and the first
// 16 hex digits of the hash of the bundle's files, prefixed by the .manifest
// revision and "@" when the bundle has one.
func (e *Engine) Revision() string { return e.cur.Load().revision }

// Evaluate judges one proposal. shards is the metadata of the registered shards
// (at least those the proposal names); it becomes input.shards.
//
// The verdict is never nil and always carries the revision of the bundle that
// produced it. On a malformed proposal it denies with INVALID_INPUT and the error
// wraps ErrInvalidInput; if the policy cannot be evaluated (error, timeout,
// cancelled ctx, malformed answer) it denies with POLICY_ERROR and the error
// wraps ErrEvaluation. The error is for logging: the verdict is the answer.
func (e *Engine) Evaluate(ctx context.Context, p *smv1.Proposal, shards []*smv1.ShardInfo) (*smv1.PolicyVerdict, error) {
	start := time.Now()
	c := e.cur.Load()
	if testHookEvalStarted != nil {
		testHookEvalStarted(c.revision)
	}
	in, err := buildInput(p, shards, c.queues)
	if err != nil {
		v := denyVerdict(CodeInvalidInput, err.Error(), c.revision)
		e.stats.record(v, err, time.Since(start))
		return v, err
	}
	if err := ctx.Err(); err != nil {
		return e.evalFailed(c, fmt.Errorf("caller gave up: %w", err), start)
	}
	t, err := c.query.eval(ctx, in, e.cfg.EvalTimeout)
	if err == nil {
		var allow bool
		var denials []*smv1.Denial
		if allow, denials, err = parseMatch(t); err == nil {
			v := verdictOf(allow, denials, c.revision)
			e.stats.record(v, nil, time.Since(start))
			return v, nil
		}
	}
	// OPA reports a cancelled evaluation with an error of its own; name the cause.
	if ctx.Err() != nil {
		err = fmt.Errorf("caller gave up: %w", ctx.Err())
	} else if errors.Is(err, errTimeout) {
		err = fmt.Errorf("evaluation exceeded the %s timeout: %w", e.cfg.EvalTimeout, context.DeadlineExceeded)
	}
	return e.evalFailed(c, err, start)
}

// noMetrics spares every evaluation OPA's metrics, which the engine does not
// read (Stats has its own counters).
var noMetrics = metrics.NoOp()

// InputDocument returns the input document Evaluate would give the policy for
// p and shards, as plain JSON-able values (sets become sorted arrays). It is
// for people and tests, not for the hot path.
func (e *Engine) InputDocument(p *smv1.Proposal, shards []*smv1.ShardInfo) (map[string]any, error) {
	in, err := buildInput(p, shards, e.cur.Load().queues)
	if err != nil {
		return nil, err
	}
	doc, err := plain(in)
	if err != nil {
		return nil, err
	}
	return doc.(map[string]any), nil
}

// plain converts a part of the input document to plain Go values. The lazy
// parts (ast.LazyObject) hold AST values and values that encode themselves
// to JSON, and ast.JSON hands them over as they are.
func plain(x any) (any, error) {
	switch x := x.(type) {
	case ast.Value:
		v, err := ast.JSON(x)
		if err != nil {
			return nil, err
		}
		if m, ok := v.(map[string]any); ok {
			return plain(m) // a lazy object's native values
		}
		return v, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			pv, err := plain(v)
			if err != nil {
				return nil, err
			}
			out[k] = pv
		}
		return out, nil
	case json.Marshaler:
		bs, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(bs))
		d.UseNumber()
		return v, d.Decode(&v)
	}
	return x, nil
}

// testHookEvalStarted, if set (by tests only), is called once an evaluation
// has picked the bundle version it will use.
var testHookEvalStarted func(revision string)

// evalFailed is the fail-closed verdict for a policy that could not be
// evaluated.
func (e *Engine) evalFailed(c *compiled, cause error, start time.Time) (*smv1.PolicyVerdict, error) {
	err := fmt.Errorf("%w: revision %s: %w", ErrEvaluation, c.revision, cause)
	v := denyVerdict(CodePolicyError, "policy could not be evaluated, so the proposal is denied: "+err.Error(), c.revision)
	e.stats.record(v, err, time.Since(start))
	return v, err
}
