package render

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// TestDashboardMetricsExist: every shardmatch_* series the Grafana dashboard queries
// is one a coordinator node really exports: the names come from the admin package's
// own collectors, registered on a real (single-node) coordinator, not from a list.
func TestDashboardMetricsExist(t *testing.T) {
	exported := exportedMetrics(t)
	raw, err := os.ReadFile(filepath.Join(ChartDir(), "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	name := regexp.MustCompile(`\bshardmatch_[a-z0-9_]+`)
	used := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				used[n] = true
			}
		}
	}
	if len(used) < 10 {
		t.Fatalf("the dashboard queries only %d metrics", len(used))
	}
	for n := range used {
		switch {
		case exported[n]:
		default:
			t.Errorf("the dashboard queries %s, which the coordinator does not export", n)
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"shardmatch_decisions_total", "shardmatch_phase_duration_seconds_bucket", "shardmatch_is_leader",
		"shardmatch_raft_term", "shardmatch_raft_applied_index", "shardmatch_raft_lag", "shardmatch_leases_active",
		"shardmatch_policy_evaluations_total", "shardmatch_policy_denials_total", "shardmatch_nats_connected", "shardmatch_txns_in_doubt"} {
		if !used[want] {
			t.Errorf("the dashboard does not chart %s", want)
		}
	}
}

// exportedMetrics starts a one-node coordinator with an admin server, the policy
// metrics and a malformed-message source, as `coordinator serve` wires them, and
// returns the names /metrics would show (histograms with _bucket, _sum, _count).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ref := clock.NewReal()
	netw := twophase.NewInmemNetwork(twophase.InmemConfig{Clock: ref})
	t.Cleanup(func() { _ = netw.Close() })
	m, err := admin.NewMetrics(admin.MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{Nodes: 1, DataDir: t.TempDir(),
		Participants: func(id string) coordinator.TransportFactory {
			return func(h twophase.ReplyHandler) (twophase.Transport, error) { return netw.Coordinator(id, h), nil }
		},
		Configure: func(_ string, cfg *coordinator.Config) { cfg.Clock, cfg.OnDecided = ref, m.ObserveDecision },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Shutdown)
	srv, err := admin.New(admin.Config{Node: lc.Node(0), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	// Label-keyed series appear once they have a value: give every label one.
	if err := m.AddPolicy(func() policy.Stats {
		return policy.Stats{Revision: "test", Evaluations: 1, Denied: 1, DenialsByCode: map[string]uint64{"MMR_SPREAD": 1}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddMalformedSource("api", func() uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	if err := m.AddNATSConn(func() bool { return true }, func() uint64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	// shardmatch_txns_in_doubt has a series per registered shard.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lc.OnLeader(ctx, func(n *coordinator.Node) error {
		return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: "s1", Region: "eu"})
	}); err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range fams {
		out[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[f.GetName()+s] = true
			}
		}
	}
	return out
}
