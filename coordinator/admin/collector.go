package admin

import (
	"context"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeCollector reads the node's gauges at scrape time, so they are never stale and
// cost nothing between scrapes.
type nodeCollector struct {
	s *Server

	raftState, term, commit, applied, lastIndex, fsmApplied *prometheus.Desc
	isLeader, ready, leases, inFlight, txns, shards         *prometheus.Desc
	lag, inDoubt                                            *prometheus.Desc
}

func newNodeCollector(s *Server, labels prometheus.Labels) *nodeCollector {
	d := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, varLabels, labels)
	}
	return &nodeCollector{s: s,
		raftState:  d("raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown."),
		term:       d("raft_term", "Current Raft term."),
		commit:     d("raft_commit_index", "Highest log index this node knows committed."),
		applied:    d("raft_applied_index", "Highest log index handed to the FSM."),
		lastIndex:  d("raft_last_index", "Last index in this node's log."),
		fsmApplied: d("fsm_applied_index", "Last log index whose commands the FSM applied."),
		isLeader:   d("is_leader", "1 while this node leads and has finished taking over."),
		ready:      d("ready", "1 when /readyz answers 200: caught up with the leader's commit index (on the leader: taken over)."),
		leases:     d("leases_active", "Player leases held (RESERVED or ACTIVE)."),
		inFlight:   d("txns_in_flight", "Transactions not finished, by state: preparing, or decided and undelivered.", "state"),
		txns:       d("txns_retained", "Transactions in the FSM, finished ones included until forgotten."),
		shards:     d("shards_registered", "Shards in the registry."),
		lag:        d("raft_lag", "Entries this node's applied index trails the leader's commit index (as /readyz learned it)."),
		inDoubt:    d("txns_in_doubt", "Decided transactions the shard has not acknowledged yet (it holds them prepared, in doubt).", "shard"),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftState, c.term, c.commit, c.applied, c.lastIndex, c.fsmApplied,
		c.isLeader, c.ready, c.leases, c.inFlight, c.txns, c.shards, c.lag, c.inDoubt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	r, st := c.s.raft, c.s.state
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	state := r.State()
	g(c.raftState, float64(state))
	g(c.term, float64(r.CurrentTerm()))
	g(c.commit, float64(r.CommitIndex()))
	g(c.applied, float64(r.AppliedIndex()))
	g(c.lastIndex, float64(r.LastIndex()))
	g(c.fsmApplied, float64(st.AppliedIndex()))
	g(c.isLeader, b(state == raft.Leader && c.s.node.IsLeader()))
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.LeaderIndexTimeout)
	defer cancel()
	rd := c.s.readiness(ctx)
	g(c.ready, b(rd.Ready))
	g(c.lag, float64(rd.Lag))
	for shard, n := range st.InDoubtByShard() {
		g(c.inDoubt, float64(n), shard)
	}
	counts := st.Counts()
	g(c.leases, float64(counts.Leases))
	g(c.inFlight, float64(counts.Preparing), "preparing")
	g(c.inFlight, float64(counts.Undelivered), "undelivered")
	g(c.txns, float64(counts.Txns))
	g(c.shards, float64(counts.Shards))
}
