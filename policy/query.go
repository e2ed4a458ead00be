package policy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// preparedQuery is Query compiled once per bundle version and evaluated by
// OPA's evaluator (topdown) directly. rego.PreparedEvalQuery.Eval builds an
// evaluation context, opens a store transaction and assembles a result set on
// every call; here all of that is done once: the compiled query, the compiler
// and a read transaction (nothing ever writes to a bundle's store, so one read
// transaction serves every evaluation, concurrently) sit in a template that an
// evaluation copies.
type preparedQuery struct {
	tmpl topdown.Query
	// compiler and txn serve the load-time evaluations of evalStatic.
	compiler *ast.Compiler
	txn      storage.Transaction
	store    storage.Store
}

// resultVar is the variable the compiled query binds the answer to.
var resultVar = ast.Var("__shardmatch_result__")

// regoOptions are the settings every evaluation of the policy query runs with: Rego v1,
// strict built-in errors, no unsafe built-ins, the bundle's data in store.
func regoOptions(store storage.Store) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(store),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
		rego.UnsafeBuiltins(unsafeBuiltins),
	}
}

// prepareQuery compiles modules and the query over store with rego, which
// checks them as it would for rego.PreparedEvalQuery (Rego v1, strict built-in
// errors, no unsafe built-ins), and keeps what evaluation needs.
func prepareQuery(ctx context.Context, modules []*ast.Module, store storage.Store) (*preparedQuery, error) {
	var compiler *ast.Compiler
	opts := append(regoOptions(store), rego.CompilerHook(func(c *ast.Compiler) { compiler = c }))
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	if _, err := rego.New(opts...).PrepareForEval(ctx); err != nil {
		return nil, err
	}
	if compiler == nil {
		return nil, errors.New("rego did not hand over its compiler")
	}
	ref, err := ast.ParseRef(Query)
	if err != nil {
		return nil, err
	}
	qc, body, err := compileRef(compiler, ref)
	if err != nil {
		return nil, err
	}
	txn, err := store.NewTransaction(ctx) // read-only, never closed: the store is never written
	if err != nil {
		return nil, err
	}
	q := topdown.NewQuery(body).
		WithQueryCompiler(qc).
		WithCompiler(compiler).
		WithStore(store).
		WithTransaction(txn).
		WithStrictBuiltinErrors(true).
		WithMetrics(noMetrics)
	return &preparedQuery{tmpl: *q, compiler: compiler, txn: txn, store: store}, nil
}

// evalStatic evaluates ref once, with no input, against the bundle's modules
// and data: for documents that depend on data only, which the engine computes
// when a bundle loads instead of on every evaluation. It returns nil if ref is
// undefined (a rule that reads input is undefined here).
func (q *preparedQuery) evalStatic(ctx context.Context, ref ast.Ref) (*ast.Term, error) {
	qc, body, err := compileRef(q.compiler, ref)
	if err != nil {
		return nil, err
	}
	var result *ast.Term
	err = topdown.NewQuery(body).
		WithQueryCompiler(qc).
		WithCompiler(q.compiler).
		WithStore(q.store).
		WithTransaction(q.txn).
		WithStrictBuiltinErrors(true).
		Iter(ctx, func(qr topdown.QueryResult) error {
			result = qr[resultVar]
			return nil
		})
	return result, err
}

// compileRef compiles the query `resultVar = ref` against compiler, refusing
// the unsafe built-ins.
func compileRef(compiler *ast.Compiler, ref ast.Ref) (ast.QueryCompiler, ast.Body, error) {
	qc := compiler.QueryCompiler().WithUnsafeBuiltins(unsafeBuiltins)
	body, err := qc.Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(resultVar), ast.NewTerm(ref))))
	return qc, body, err
}

// errTimeout is the cause of an evaluation that ran out of time.
var errTimeout = errors.New("evaluation timed out")

// eval evaluates the query on input, within timeout and while ctx lasts. It
// returns the answer, nil if the query is undefined for input.
//
// The timeout and ctx trip a cancel handle the evaluator polls, through a
// runtime timer and a context callback: no goroutine per evaluation (which
// rego starts unless given a handle). The timeout bounds CPU spent here, so it
// runs on the real clock.
func (q *preparedQuery) eval(ctx context.Context, input ast.Value, timeout time.Duration) (*ast.Term, error) {
	st := acquireEvalState(timeout)
	defer st.release()
	if ctx.Done() != nil {
		st.stopCtx = context.AfterFunc(ctx, st.Cancel)
	}
	st.query = q.tmpl
	var result *ast.Term
	err := st.query.
		WithInput(ast.NewTerm(input)).
		WithCancel(st).
		WithVirtualCache(&st.caches.virtual).
		WithBaseCache(&st.caches.base).
		WithRequestMetadata(st.meta).
		Iter(ctx, func(qr topdown.QueryResult) error {
			result = qr[resultVar]
			return nil
		})
	if err != nil && st.timedOut.Load() {
		return nil, errTimeout
	}
	return result, err
}

// evalState is what one evaluation needs besides the input, pooled: the
// caches, the query copied from the template, the cancel handle and the
// timer that trips it.
type evalState struct {
	caches    *evalCaches
	query     topdown.Query
	meta      map[string]any // request metadata for built-ins: none, but OPA would allocate a map
	timer     *time.Timer
	cancelled atomic.Bool
	timedOut  atomic.Bool
	stopCtx   func() bool
}

var statePool sync.Pool

func acquireEvalState(timeout time.Duration) *evalState {
	st, _ := statePool.Get().(*evalState)
	if st == nil {
		st = &evalState{caches: new(evalCaches), meta: map[string]any{}}
		st.timer = time.AfterFunc(timeout, st.expire)
	} else {
		st.timer.Reset(timeout)
	}
	st.caches.acquire()
	return st
}

func (st *evalState) expire() {
	st.timedOut.Store(true)
	st.Cancel()
}

// Cancel and Cancelled make evalState the topdown.Cancel of its evaluation.
func (st *evalState) Cancel()         { st.cancelled.Store(true) }
func (st *evalState) Cancelled() bool { return st.cancelled.Load() }

// release readies st for the next evaluation, unless its timer or context
// callback has fired or is firing: then it could still cancel whichever
// evaluation used st next, so st is left to the collector.
func (st *evalState) release() {
	st.caches.release()
	st.query = topdown.Query{}
	reusable := st.timer.Stop()
	if st.stopCtx != nil {
		reusable = st.stopCtx() && reusable
		st.stopCtx = nil
	}
	if !reusable || st.cancelled.Load() || len(st.meta) > 0 {
		return
	}
	statePool.Put(st)
}
