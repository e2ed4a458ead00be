package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Namespace prefixes every metric name.
const Namespace = "shardmatch"

// Phase names a stage of a transaction for phase_duration_seconds.
type Phase string

// The phases of one transaction.
const (
	// PhasePrepare runs from Begin applied to the decision applied: prepares sent,
	// votes gathered or timed out. ObserveDecision measures it from the decision's
	// timestamps.
	PhasePrepare Phase = "prepare"
	// PhaseDecide is the time to log a decision (one Raft apply of Decide).
	PhaseDecide Phase = "decide"
	// PhaseDeliver runs from the decision logged to the last shard's ack logged.
	PhaseDeliver Phase = "deliver"
)

// DefaultBuckets are phase_duration_seconds's buckets: 1ms to 1min.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// MetricsConfig configures NewMetrics.
type MetricsConfig struct {
	// Registry receives the metrics. Nil: a new registry with the Go runtime and
	// process collectors.
	Registry *prometheus.Registry
	// NodeID, if set, labels every series node="<id>", so several nodes in one process
	// (`coordinator dev`) can share a registry.
	NodeID string
	// Buckets overrides DefaultBuckets.
	Buckets []float64
}

// Metrics is a node's event metrics, fed by the composition root: ObserveDecision from
// coordinator.Config.OnDecided, ObserveProposal from natsapi.Config.OnProposal (once
// per proposal, not per redelivery), ObservePhase from coordinator.Config.OnPhase
// (decide, deliver; prepare comes from the decisions), AddMalformedSource for the
// components that read messages off NATS. Scrape-time gauges (Raft state, counts) are read from the node
// by the Server. Every method is safe for concurrent use, never blocks and is a no-op
// on a nil *Metrics.
type Metrics struct {
	reg       *prometheus.Registry
	nodeLabel prometheus.Labels

	proposals prometheus.Counter
	decisions *prometheus.CounterVec
	phases    *prometheus.HistogramVec

	// Resolved children, read-only after NewMetrics, so the hot path is a map read
	// and an atomic add.
	decided map[decisionKey]prometheus.Counter
	phase   map[Phase]prometheus.Observer

	// tally is what GET /v1/stats and GET /v1/policy report.
	tally decisionTally
}

type decisionKey struct {
	outcome smv1.Outcome
	reason  smv1.Reason
}

// NewMetrics makes and registers the event metrics.
func NewMetrics(cfg MetricsConfig) (*Metrics, error) {
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	buckets := cfg.Buckets
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	var labels prometheus.Labels
	if cfg.NodeID != "" {
		labels = prometheus.Labels{"node": cfg.NodeID}
	}
	m := &Metrics{reg: reg, nodeLabel: labels,
		proposals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "proposals_total",
			Help: "Proposals taken in by this node's intake.", ConstLabels: labels}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "decisions_total",
			Help: "Decisions applied by this node's FSM (every replica counts every decision; " +
				"a restart replaying its log counts them again).", ConstLabels: labels}, []string{"outcome", "reason"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "phase_duration_seconds",
			Help:    "Duration of a transaction phase: prepare (begin to decision), decide (logging it), deliver (decision to last ack).",
			Buckets: buckets, ConstLabels: labels}, []string{"phase"}),
		decided: map[decisionKey]prometheus.Counter{},
		phase:   map[Phase]prometheus.Observer{},
	}
	for _, c := range []prometheus.Collector{m.proposals, m.decisions, m.phases} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the meaningful series so rate() sees zeros from the start.
	key := decisionKey{smv1.Outcome_OUTCOME_COMMITTED, smv1.Reason_REASON_UNSPECIFIED}
	m.decided[key] = m.decisions.WithLabelValues(outcomeLabel(key.outcome), reasonLabel(key.reason))
	for r := range smv1.Reason_name {
		if key := (decisionKey{smv1.Outcome_OUTCOME_ABORTED, smv1.Reason(r)}); key.reason != smv1.Reason_REASON_UNSPECIFIED {
			m.decided[key] = m.decisions.WithLabelValues(outcomeLabel(key.outcome), reasonLabel(key.reason))
		}
	}
	for _, p := range []Phase{PhasePrepare, PhaseDecide, PhaseDeliver} {
		m.phase[p] = m.phases.WithLabelValues(string(p))
	}
	return m, nil
}

// Registry is where the metrics are registered; /metrics serves it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveProposal counts one proposal taken in.
func (m *Metrics) ObserveProposal() {
	if m != nil {
		m.proposals.Inc()
	}
}

// ObserveDecision counts d by outcome and reason and, for a transaction that went
// through prepare, observes its prepare phase from the decision's timestamps (the
// leaders' wall clocks: display-grade, skipped when they run backwards). It is cheap
// and never blocks, so coordinator.Config.OnDecided may call it with the FSM lock held.
func (m *Metrics) ObserveDecision(d *smv1.Decision) {
	if m == nil || d == nil {
		return
	}
	o, r := d.GetOutcome(), d.GetReason()
	if o != smv1.Outcome_OUTCOME_COMMITTED && o != smv1.Outcome_OUTCOME_ABORTED {
		return
	}
	m.tally.observe(d)
	if c, ok := m.decided[decisionKey{o, r}]; ok {
		c.Inc()
	} else {
		m.decisions.WithLabelValues(outcomeLabel(o), reasonLabel(r)).Inc()
	}
	switch r {
	case smv1.Reason_REASON_POLICY_DENIED, smv1.Reason_REASON_PLAYER_LEASED, smv1.Reason_REASON_INVALID:
		return // decided at Begin: no prepare phase
	}
	created, decided := d.GetCreatedUnixMs(), d.GetDecidedUnixMs()
	if created > 0 && decided >= created {
		m.phase[PhasePrepare].Observe(float64(decided-created) / 1e3)
	}
}

// AddMalformedSource exports a component's count of malformed messages (undecodable,
// or lacking a field every message of its kind has: dropped or answered INVALID,
// never applied) as shardmatch_malformed_messages_total{source="<source>"}. read is
// called at scrape time and must be cheap and monotonic; the composition root passes
// the counters the NATS-facing components keep (natsapi.Server.Stats,
// natstransport.Coordinator.Stats). A source name may be added once.
func (m *Metrics) AddMalformedSource(source string, read func() uint64) error {
	if m == nil {
		return nil
	}
	if source == "" || read == nil {
		return errors.New("admin: AddMalformedSource needs a source name and a read function")
	}
	labels := prometheus.Labels{"source": source}
	for k, v := range m.nodeLabel {
		labels[k] = v
	}
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: "malformed_messages_total",
		Help:        "Messages that could not be decoded or lacked a required field, by the component that dropped them; never applied.",
		ConstLabels: labels}, func() float64 { return float64(read()) })
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("admin: malformed source %q: %w", source, err)
	}
	return nil
}

// AddNATSConn exports the state of the node's NATS connection, read at scrape time:
// shardmatch_nats_connected (1 while connected, 0 while not) and
// shardmatch_nats_reconnects_total. The composition root passes nats.Conn's
// IsConnected and Stats().Reconnects. It may be called once.
func (m *Metrics) AddNATSConn(connected func() bool, reconnects func() uint64) error {
	if m == nil {
		return nil
	}
	if connected == nil || reconnects == nil {
		return errors.New("admin: AddNATSConn needs both read functions")
	}
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "nats_connected",
		Help: "1 while this node's NATS connection is up, 0 while it is down.", ConstLabels: m.nodeLabel},
		func() float64 {
			if connected() {
				return 1
			}
			return 0
		})
	re := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: "nats_reconnects_total",
		Help: "Times this node's NATS connection reconnected.", ConstLabels: m.nodeLabel},
		func() float64 { return float64(reconnects()) })
	for _, c := range []prometheus.Collector{up, re} {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("admin: nats connection metrics: %w", err)
		}
	}
	return nil
}

// ObservePhase records that phase took d. Unknown phases are ignored, so a caller can
// never blow up the label set.
func (m *Metrics) ObservePhase(phase Phase, d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	if o, ok := m.phase[phase]; ok {
		o.Observe(d.Seconds())
	}
}

func outcomeLabel(o smv1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}

func reasonLabel(r smv1.Reason) string {
	if r == smv1.Reason_REASON_UNSPECIFIED {
		return "none"
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "REASON_"))
}
