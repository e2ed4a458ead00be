package admin

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// metricValue finds the sample of name whose labels include every k="v" pair in
// labels, in Prometheus text exposition.
func metricValue(t *testing.T, text, name string, labels ...string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series, val := line[:i], line[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for j := 0; j+1 < len(labels); j += 2 {
			ok = ok && strings.Contains(series, labels[j]+`="`+labels[j+1]+`"`)
		}
		if ok {
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("bad sample %q: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

func TestObserveDecision(t *testing.T) {
	m, err := NewMetrics(MetricsConfig{NodeID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	committed := &smv1.Decision{Outcome: smv1.Outcome_OUTCOME_COMMITTED, CreatedUnixMs: 1000, DecidedUnixMs: 1250}
	m.ObserveDecision(committed)
	m.ObserveDecision(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_SHARD_TIMEOUT,
		CreatedUnixMs: 1000, DecidedUnixMs: 6000})
	// Decided at Begin: counted, no prepare phase.
	m.ObserveDecision(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_PLAYER_LEASED,
		CreatedUnixMs: 1000, DecidedUnixMs: 1000})
	// Clock ran backwards: counted, not timed. Undecided: ignored. Odd pair: counted.
	m.ObserveDecision(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_COMMITTED, CreatedUnixMs: 5000, DecidedUnixMs: 10})
	m.ObserveDecision(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_PENDING})
	m.ObserveDecision(nil)
	m.ObserveDecision(&smv1.Decision{Outcome: smv1.Outcome_OUTCOME_COMMITTED, Reason: smv1.Reason_REASON_INVALID})
	m.ObservePhase(PhaseDeliver, 30*time.Millisecond)
	m.ObservePhase("bogus", time.Second)
	m.ObserveProposal()

	text := gather(t, m.Registry())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shardmatch_decisions_total", []string{"outcome", "committed", "reason", "none"}, 2},
		{"shardmatch_decisions_total", []string{"outcome", "aborted", "reason", "shard_timeout"}, 1},
		{"shardmatch_decisions_total", []string{"outcome", "aborted", "reason", "player_leased"}, 1},
		{"shardmatch_decisions_total", []string{"outcome", "aborted", "reason", "operator_abort"}, 0},
		{"shardmatch_decisions_total", []string{"outcome", "committed", "reason", "invalid"}, 1},
		{"shardmatch_phase_duration_seconds_count", []string{"phase", "prepare"}, 2},
		{"shardmatch_phase_duration_seconds_sum", []string{"phase", "prepare"}, 5.25},
		{"shardmatch_phase_duration_seconds_count", []string{"phase", "deliver"}, 1},
		{"shardmatch_phase_duration_seconds_count", []string{"phase", "decide"}, 0},
		{"shardmatch_proposals_total", []string{"node", "c1"}, 1},
	} {
		if got, ok := metricValue(t, text, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if strings.Contains(text, "bogus") {
		t.Error("an unknown phase made a series")
	}
	if !strings.Contains(text, "go_goroutines") {
		t.Error("a default registry lacks the Go collector")
	}

	var nilM *Metrics
	nilM.ObserveDecision(committed)
	nilM.ObservePhase(PhasePrepare, time.Second)
	nilM.ObserveProposal()
}

// ObserveDecision runs under the FSM lock: no allocation, safe from many goroutines.
func TestObserveDecisionIsCheap(t *testing.T) {
	m, err := NewMetrics(MetricsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d := &smv1.Decision{Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_SHARD_REJECTED,
		CreatedUnixMs: 1, DecidedUnixMs: 3}
	if n := testing.AllocsPerRun(1000, func() { m.ObserveDecision(d) }); n != 0 {
		t.Fatalf("ObserveDecision allocates %v times per call", n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				m.ObserveDecision(d)
			}
		})
	}
	wg.Wait()
	if got, _ := metricValue(t, gather(t, m.Registry()), "shardmatch_decisions_total", "reason", "shard_rejected"); got != 8000+1001 {
		t.Fatalf("count %v", got)
	}
}

func TestMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(MetricsConfig{Registry: reg, NodeID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(MetricsConfig{Registry: reg, NodeID: "c2"}); err != nil {
		t.Fatalf("second node on one registry: %v", err)
	}
	if _, err := NewMetrics(MetricsConfig{Registry: reg, NodeID: "c2"}); err == nil {
		t.Fatal("the same node registered twice")
	}
}

func TestScrapeGaugesOnFakes(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/metrics", "", "")
	if rec.Code != 200 {
		t.Fatalf("metrics %d", rec.Code)
	}
	text := rec.Body.String()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shardmatch_raft_state", nil, 2}, {"shardmatch_raft_term", nil, 4}, {"shardmatch_raft_commit_index", nil, 20},
		{"shardmatch_raft_applied_index", nil, 20}, {"shardmatch_fsm_applied_index", nil, 7}, {"shardmatch_is_leader", nil, 1},
		{"shardmatch_ready", nil, 1}, {"shardmatch_leases_active", nil, 1}, {"shardmatch_shards_registered", nil, 2},
		{"shardmatch_txns_in_flight", []string{"state", "preparing"}, 1},
		{"shardmatch_txns_in_flight", []string{"state", "undelivered"}, 1}, {"shardmatch_txns_retained", nil, 3},
	} {
		if got, ok := metricValue(t, text, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Fresh on every scrape.
	f.r.mu.Lock()
	f.r.term, f.r.state = 9, 0
	f.r.mu.Unlock()
	text = f.do("GET", "/metrics", "", "").Body.String()
	if got, _ := metricValue(t, text, "shardmatch_raft_term"); got != 9 {
		t.Errorf("term after change %v", got)
	}
	if got, _ := metricValue(t, text, "shardmatch_is_leader"); got != 0 {
		t.Errorf("is_leader of a follower %v", got)
	}
	// Close unregisters, so a restarted node's Server can register again.
	f.srv.Close()
	if _, err := newServer(Config{Node: f.node, Metrics: f.srv.Metrics()}, f.r, f.st); err != nil {
		t.Fatalf("re-register after Close: %v", err)
	}
}

// gather renders reg in the text exposition format.
func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("gather: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestMalformedSources: each source's count is read at scrape time under its own
// label; bad or repeated registrations are refused.
func TestMalformedSources(t *testing.T) {
	m, err := NewMetrics(MetricsConfig{NodeID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	var requests, replies uint64 = 3, 0
	if err := m.AddMalformedSource("requests", func() uint64 { return requests }); err != nil {
		t.Fatal(err)
	}
	if err := m.AddMalformedSource("replies", func() uint64 { return replies }); err != nil {
		t.Fatal(err)
	}
	if m.AddMalformedSource("requests", func() uint64 { return 0 }) == nil {
		t.Error("a source registered twice")
	}
	if m.AddMalformedSource("", func() uint64 { return 0 }) == nil || m.AddMalformedSource("x", nil) == nil {
		t.Error("an unnamed source or a nil reader was accepted")
	}
	text := gather(t, m.Registry())
	if got, ok := metricValue(t, text, "shardmatch_malformed_messages_total", "node", "c1", "source", "requests"); !ok || got != 3 {
		t.Errorf("requests = %v (found %v), want 3", got, ok)
	}
	replies = 7
	text = gather(t, m.Registry())
	if got, _ := metricValue(t, text, "shardmatch_malformed_messages_total", "source", "replies"); got != 7 {
		t.Errorf("replies = %v after it rose, want 7", got)
	}
	var nilM *Metrics
	if err := nilM.AddMalformedSource("x", func() uint64 { return 0 }); err != nil {
		t.Errorf("nil Metrics: %v", err)
	}
}

// TestLagInDoubtAndNATSMetrics: shardmatch_raft_lag follows /readyz's lag,
// shardmatch_txns_in_doubt{shard} counts decided, unacked txns per shard, and the NATS
// connection gauges read what the composition root passes, all at scrape time.
func TestLagInDoubtAndNATSMetrics(t *testing.T) {
	var mu sync.Mutex
	connected, reconnects := true, uint64(0)
	leaderCommit := uint64(20)
	f := newFixture(t, func(cfg *Config, n *fakeNode) Node {
		cfg.LeaderIndex = LeaderIndexFunc(func(context.Context) (LeaderIndex, error) {
			mu.Lock()
			defer mu.Unlock()
			return LeaderIndex{NodeID: "c2", CommitIndex: leaderCommit}, nil
		})
		m, err := NewMetrics(MetricsConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AddNATSConn(func() bool { mu.Lock(); defer mu.Unlock(); return connected },
			func() uint64 { mu.Lock(); defer mu.Unlock(); return reconnects }); err != nil {
			t.Fatal(err)
		}
		cfg.Metrics = m
		return n
	})
	f.r.state, f.r.leaderID, f.r.commit, f.r.applied = raft.Follower, "c2", 20, 20
	f.st.txns[1].Shards = []string{"s1", "s2"} // tx-6-0, COMMITTED
	scrape := func() string {
		t.Helper()
		rec := f.do("GET", "/metrics", "", "")
		if rec.Code != 200 {
			t.Fatalf("metrics %d", rec.Code)
		}
		return rec.Body.String()
	}
	want := func(text, name string, v float64, labels ...string) {
		t.Helper()
		if got, ok := metricValue(t, text, name, labels...); !ok || got != v {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, v)
		}
	}
	text := scrape()
	want(text, "shardmatch_raft_lag", 0)
	want(text, "shardmatch_txns_in_doubt", 1, "shard", "s1")
	want(text, "shardmatch_txns_in_doubt", 1, "shard", "s2")
	want(text, "shardmatch_nats_connected", 1)
	want(text, "shardmatch_nats_reconnects_total", 0)

	mu.Lock()
	leaderCommit, connected, reconnects = 520, false, 2
	mu.Unlock()
	f.st.txns[1].Acked = []string{"s1"}
	text = scrape()
	want(text, "shardmatch_raft_lag", 500)
	want(text, "shardmatch_ready", 0)
	want(text, "shardmatch_txns_in_doubt", 0, "shard", "s1")
	want(text, "shardmatch_txns_in_doubt", 1, "shard", "s2")
	want(text, "shardmatch_nats_connected", 0)
	want(text, "shardmatch_nats_reconnects_total", 2)
}
