package policy

import (
	"context"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// SetTestHooks installs the package's test hooks and returns a function that
// removes them. evalStarted runs once an evaluation has picked its bundle
// version; polled runs after every poll of Watch. Either may be nil.
func SetTestHooks(evalStarted func(revision string), polled func()) (restore func()) {
	testHookEvalStarted, testHookPolled = evalStarted, polled
	return func() { testHookEvalStarted, testHookPolled = nil, nil }
}

// Legacy evaluates proposals as the engine did before the allocation work
// (legacy_test.go): the "before" of the benchmarks.
type Legacy struct{ e *legacyEngine }

// NewLegacy loads the bundle in dir for the old evaluation path.
func NewLegacy(dir string) (*Legacy, error) {
	e, err := newLegacyEngine(dir)
	return &Legacy{e}, err
}

// Evaluate judges p on the old path.
func (l *Legacy) Evaluate(ctx context.Context, p *smv1.Proposal, shards []*smv1.ShardInfo) (*smv1.PolicyVerdict, error) {
	return l.e.evaluate(ctx, p, shards)
}
