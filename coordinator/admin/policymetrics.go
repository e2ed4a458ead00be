package admin

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardmatch/shardmatch/policy"
)

// AddPolicy exports the policy engine's counters and its evaluation latency, read
// from stats at scrape time: evaluations by verdict, evaluation errors and timeouts,
// malformed inputs, denials by code, reloads and failed reloads (a bundle that did
// not compile and was not installed), the revision in use, and the latency
// histogram behind the engine's p99 target.
func (m *Metrics) AddPolicy(stats func() policy.Stats) error {
	if m == nil {
		return nil
	}
	if stats == nil {
		return errors.New("admin: AddPolicy needs a stats function")
	}
	if err := m.reg.Register(newPolicyCollector(stats, m.nodeLabel)); err != nil {
		return fmt.Errorf("admin: policy metrics: %w", err)
	}
	m.tally.policy.Store(&stats)
	return nil
}

type policyCollector struct {
	stats func() policy.Stats

	evals, errs, timeouts, invalid, denials, reloads, reloadFailures, revision, latency *prometheus.Desc
}

func newPolicyCollector(stats func() policy.Stats, labels prometheus.Labels) *policyCollector {
	d := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "policy", name), help, varLabels, labels)
	}
	return &policyCollector{stats: stats,
		evals:          d("evaluations_total", "Policy evaluations by verdict (allow or deny).", "verdict"),
		errs:           d("eval_errors_total", "Evaluations that failed (error, timeout, cancelled) and denied with POLICY_ERROR."),
		timeouts:       d("eval_timeouts_total", "Evaluations that hit the evaluation timeout (part of eval_errors_total)."),
		invalid:        d("invalid_inputs_total", "Proposals refused as malformed before evaluation."),
		denials:        d("denials_total", "Denied proposals by denial code (a proposal counts once per code).", "code"),
		reloads:        d("reloads_total", "Bundle reloads that installed a version or found it unchanged."),
		reloadFailures: d("reload_failures_total", "Bundle reloads that failed (e.g. did not compile) and kept the old version."),
		revision:       d("revision_info", "The bundle revision in use (value 1).", "revision"),
		latency:        d("eval_seconds", "Policy evaluation time."),
	}
}

// Describe implements prometheus.Collector.
func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.evals, c.errs, c.timeouts, c.invalid, c.denials, c.reloads, c.reloadFailures, c.revision, c.latency} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	count(c.evals, s.Allowed, "allow")
	count(c.evals, s.Denied, "deny")
	count(c.errs, s.EvalErrors)
	count(c.timeouts, s.Timeouts)
	count(c.invalid, s.InvalidInputs)
	for code, n := range s.DenialsByCode {
		count(c.denials, n, code)
	}
	count(c.reloads, s.Reloads)
	count(c.reloadFailures, s.ReloadFailures)
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, 1, s.Revision)

	buckets := make(map[float64]uint64, len(policy.LatencyBounds))
	var cum uint64
	for i, b := range policy.LatencyBounds {
		if i < len(s.Latency.Counts) {
			cum += s.Latency.Counts[i]
		}
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, s.Latency.Count, s.Latency.Sum.Seconds(), buckets)
}
