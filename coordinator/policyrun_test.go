package coordinator

import (
	"context"
	"errors"
	"runtime"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// gatePolicy allows every proposal once gate is closed; entered counts evaluations
// that started.
type gatePolicy struct {
	gate    chan struct{}
	entered chan struct{}
}

func (g gatePolicy) Evaluate(ctx context.Context, p *smv1.Proposal, _ []*smv1.ShardInfo) (*smv1.PolicyVerdict, error) {
	g.entered <- struct{}{}
	<-g.gate
	return &smv1.PolicyVerdict{Allow: p.GetProposalId() != "deny"}, nil
}

func TestPolicyRunner(t *testing.T) {
	stop := make(chan struct{})
	g := gatePolicy{gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	r := newPolicyRunner(g, stop)
	workers := runtime.GOMAXPROCS(0)

	// Occupy every worker, then a caller whose ctx ends before a worker is free
	// gets ctx's error and nothing is evaluated for it.
	results := make(chan *smv1.PolicyVerdict, workers)
	for range workers {
		go func() {
			v, _ := r.evaluate(context.Background(), &smv1.Proposal{ProposalId: "deny"}, nil)
			results <- v
		}()
	}
	for range workers {
		<-g.entered
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := r.evaluate(ctx, &smv1.Proposal{ProposalId: "late"}, nil); v != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("evaluate with an ended ctx and no free worker = %v, %v; want nil, context.Canceled", v, err)
	}
	close(g.gate)
	for range workers {
		if v := <-results; v == nil || v.GetAllow() {
			t.Fatalf("verdict %v, want a denial from the policy", v)
		}
	}
	if v, err := r.evaluate(context.Background(), &smv1.Proposal{ProposalId: "ok"}, nil); err != nil || !v.GetAllow() {
		t.Fatalf("evaluate = %v, %v; want allowed", v, err)
	}
	if len(g.entered) != 1 {
		t.Fatalf("%d evaluations after the busy ones, want 1 (the late caller must not be evaluated)", len(g.entered))
	}

	close(stop)
	r.wait() // every worker ended (goleak in TestMain checks none is left)
	if v, err := r.evaluate(context.Background(), &smv1.Proposal{ProposalId: "after"}, nil); v != nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("evaluate after stop = %v, %v; want nil, ErrClosed", v, err)
	}
}
