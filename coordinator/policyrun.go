package coordinator

import (
	"context"
	"runtime"
	"sync"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// policyRunner evaluates proposals on a few long-lived goroutines instead of the
// proposal's own. OPA's evaluator recurses deeply, so a fresh goroutine, which starts
// with a small stack, grew and copied its stack several times in every evaluation:
// 7% of all CPU at saturation with the policy on (runtime.copystack under OPA's
// frames). A worker keeps its grown stack from one evaluation to the next.
type policyRunner struct {
	policy Policy
	jobs   chan *policyJob
	stop   <-chan struct{}
	wg     sync.WaitGroup
}

type policyJob struct {
	ctx    context.Context
	p      *smv1.Proposal
	shards []*smv1.ShardInfo
	v      *smv1.PolicyVerdict
	err    error
	done   chan struct{}
}

// newPolicyRunner starts one worker per P; they end when stop is closed, after the
// evaluation they are running.
func newPolicyRunner(p Policy, stop <-chan struct{}) *policyRunner {
	r := &policyRunner{policy: p, jobs: make(chan *policyJob), stop: stop}
	for range runtime.GOMAXPROCS(0) {
		r.wg.Add(1)
		go r.work()
	}
	return r
}

func (r *policyRunner) work() {
	defer r.wg.Done()
	for {
		select {
		case j := <-r.jobs:
			j.v, j.err = r.policy.Evaluate(j.ctx, j.p, j.shards)
			close(j.done)
		case <-r.stop:
			return
		}
	}
}

// evaluate is Policy.Evaluate on a worker. A job a worker took is always answered
// (the evaluation itself honours ctx); one no worker took before ctx ended or the
// node stopped returns a nil verdict and the reason, and nothing was evaluated.
func (r *policyRunner) evaluate(ctx context.Context, p *smv1.Proposal, shards []*smv1.ShardInfo) (*smv1.PolicyVerdict, error) {
	j := &policyJob{ctx: ctx, p: p, shards: shards, done: make(chan struct{})}
	select {
	case r.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.stop:
		return nil, ErrClosed
	}
	<-j.done
	return j.v, j.err
}

// wait returns once every worker has ended (after stop was closed).
func (r *policyRunner) wait() { r.wg.Wait() }
