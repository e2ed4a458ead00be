package coordinator_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// phaseLog records Config.OnPhase calls per node.
type phaseLog struct {
	mu    sync.Mutex
	calls map[string]map[string][]time.Duration // node → phase → durations
}

func (l *phaseLog) hook(node string) func(string, time.Duration) {
	return func(phase string, d time.Duration) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.calls[node] == nil {
			l.calls[node] = map[string][]time.Duration{}
		}
		l.calls[node][phase] = append(l.calls[node][phase], d)
	}
}

func (l *phaseLog) count(phase string) (n int, nodes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, byPhase := range l.calls {
		if len(byPhase[phase]) > 0 {
			nodes++
		}
		n += len(byPhase[phase])
	}
	return n, nodes
}

// TestOnPhaseReportsDecideAndDeliver: the leader reports one decide phase per logged
// decision and one deliver phase per transaction whose acks are all in; a decision made
// at Begin (PLAYER_LEASED) has neither.
func TestOnPhaseReportsDecideAndDeliver(t *testing.T) {
	phases := &phaseLog{calls: map[string]map[string][]time.Duration{}}
	c := newTestCluster(t, clusterOpts{seed: 3, tweak: func(id string, cfg *coordinator.Config) { cfg.OnPhase = phases.hook(id) }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []*smv1.Proposal{match("ph1", time.Minute, "a@s1", "b@s2"), match("ph2", time.Minute, "c@s2", "d@s3")} {
		if d, err := c.propose(ctx, "p", p); err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("%s: %v %v", p.GetProposalId(), d, err)
		}
	}
	if d, err := c.propose(ctx, "p", match("ph3", time.Minute, "a@s1", "e@s3")); err != nil || d.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("ph3: %v %v", d, err)
	}
	if !c.settle(ctx) {
		t.Fatal("did not settle")
	}
	if n, nodes := phases.count(coordinator.PhaseDecide); n != 2 || nodes != 1 {
		t.Errorf("decide reported %d times on %d nodes, want 2 on the leader", n, nodes)
	}
	if n, nodes := phases.count(coordinator.PhaseDeliver); n != 2 || nodes != 1 {
		t.Errorf("deliver reported %d times on %d nodes, want 2 on the leader", n, nodes)
	}
	phases.mu.Lock()
	defer phases.mu.Unlock()
	for node, byPhase := range phases.calls {
		for phase, ds := range byPhase {
			for _, d := range ds {
				if d < 0 || d > 30*time.Second {
					t.Errorf("%s %s: implausible %s", node, phase, d)
				}
			}
		}
	}
}
