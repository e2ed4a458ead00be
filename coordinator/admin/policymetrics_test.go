package admin

import (
	"context"
	"testing"

	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/policy/cases"
)

// TestPolicyMetrics evaluates the shared policy cases on a real engine and reads the
// engine's counters and latency back from /metrics.
func TestPolicyMetrics(t *testing.T) {
	e, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(MetricsConfig{NodeID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddPolicy(e.Stats); err != nil {
		t.Fatal(err)
	}
	if m.AddPolicy(nil) == nil {
		t.Error("a nil stats function was accepted")
	}
	for _, c := range cases.All() {
		_, _ = e.Evaluate(context.Background(), c.Proposal, c.Shards)
	}
	st := e.Stats()
	if st.Allowed == 0 || st.Denied == 0 {
		t.Fatalf("the cases should allow and deny: %+v", st)
	}
	text := gather(t, m.Registry())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shardmatch_policy_evaluations_total", []string{"verdict", "allow", "node", "c1"}, float64(st.Allowed)},
		{"shardmatch_policy_evaluations_total", []string{"verdict", "deny"}, float64(st.Denied)},
		{"shardmatch_policy_eval_seconds_count", nil, float64(st.Evaluations)},
		{"shardmatch_policy_eval_seconds_bucket", []string{"le", "+Inf"}, float64(st.Evaluations)},
		{"shardmatch_policy_revision_info", []string{"revision", st.Revision}, 1},
		{"shardmatch_policy_reload_failures_total", nil, 0},
	} {
		if got, ok := metricValue(t, text, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for code, n := range st.DenialsByCode {
		if got, ok := metricValue(t, text, "shardmatch_policy_denials_total", "code", code); !ok || got != float64(n) {
			t.Errorf("denials %s = %v (found %v), want %d", code, got, ok, n)
		}
	}
}

// TestPolicyMetricsReloadFailures: a failed reload shows in reload_failures_total.
func TestPolicyMetricsReloadFailures(t *testing.T) {
	m, err := NewMetrics(MetricsConfig{NodeID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	st := policy.Stats{Revision: "r1", Reloads: 3, ReloadFailures: 2}
	if err := m.AddPolicy(func() policy.Stats { return st }); err != nil {
		t.Fatal(err)
	}
	text := gather(t, m.Registry())
	if got, _ := metricValue(t, text, "shardmatch_policy_reload_failures_total"); got != 2 {
		t.Errorf("reload failures = %v, want 2", got)
	}
	if got, _ := metricValue(t, text, "shardmatch_policy_reloads_total"); got != 3 {
		t.Errorf("reloads = %v, want 3", got)
	}
}
