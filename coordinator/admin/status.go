package admin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Status is GET /v1/status: one node's view of itself and of the cluster.
type Status struct {
	NodeID string `json:"node_id"`
	// Role is the Raft state: leader, follower, candidate or shutdown.
	Role string `json:"role"`
	// Leading is true once a leader has finished taking over (barrier, recovery) and
	// serves proposals.
	Leading bool `json:"leading"`
	// Ready and NotReady mirror /readyz.
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// LeaderID and LeaderAddr (Raft address) are empty while no leader is known.
	LeaderID   string `json:"leader_id"`
	LeaderAddr string `json:"leader_addr"`
	Term       uint64 `json:"term"`
	// CommitIndex is the highest log index this node knows committed; AppliedIndex the
	// highest Raft handed to the FSM; FSMAppliedIndex the FSM's last applied command
	// entry (it skips Raft's no-op and configuration entries); LastLogIndex the last
	// entry in this node's log.
	CommitIndex     uint64 `json:"commit_index"`
	AppliedIndex    uint64 `json:"applied_index"`
	FSMAppliedIndex uint64 `json:"fsm_applied_index"`
	LastLogIndex    uint64 `json:"last_log_index"`
	// LeaderCommitIndex is the leader's commit index as /readyz last learned it (this
	// node's own on the leader; 0 while unknown), and Lag how many entries
	// AppliedIndex trails it (or this node's own commit index, if that is higher).
	LeaderCommitIndex uint64 `json:"leader_commit_index"`
	Lag               uint64 `json:"lag"`
	// LastContactMs is how long ago a follower last heard from the leader (0 when never
	// or on the leader).
	LastContactMs int64        `json:"last_contact_ms,omitempty"`
	Peers         []Peer       `json:"peers"`
	Counts        Counts       `json:"counts"`
	Driver        *DriverStats `json:"driver,omitempty"`
	StartedAt     time.Time    `json:"started_at"`
	UptimeSeconds float64      `json:"uptime_seconds"`

	// Endpoint is the admin address the status was fetched from and Err why fetching
	// it failed; StatusClient sets them, servers never send them.
	Endpoint string `json:"-"`
	Err      error  `json:"-"`
}

// Peer is one server of the Raft configuration.
type Peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// Suffrage is voter, nonvoter or staging.
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader,omitempty"`
	Self     bool   `json:"self,omitempty"`
}

// Counts are the sizes of the node's replicated state (coordinator.Counts).
type Counts struct {
	Txns        int `json:"txns"`
	Preparing   int `json:"preparing"`
	Undelivered int `json:"undelivered"`
	Leases      int `json:"leases"`
	Shards      int `json:"shards"`
}

// DriverStats are the leader's two-phase-commit driver counters for its current term
// (twophase.DriverStats).
type DriverStats struct {
	Started       int64 `json:"started"`
	Committed     int64 `json:"committed"`
	Aborted       int64 `json:"aborted"`
	Timeouts      int64 `json:"timeouts"`
	PrepareSends  int64 `json:"prepare_sends"`
	DecisionSends int64 `json:"decision_sends"`
	StrayReplies  int64 `json:"stray_replies"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.readiness(r.Context())
	if !rd.Ready {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, rd)
		return
	}
	writeJSON(w, http.StatusOK, rd)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status(r.Context()))
}

// status assembles Status from cheap, lock-free (or read-locked) reads.
func (s *Server) status(ctx context.Context) *Status {
	addr, id := s.raft.LeaderWithID()
	rd := s.readiness(ctx)
	c := s.state.Counts()
	st := &Status{
		NodeID: s.node.ID(), Role: strings.ToLower(s.raft.State().String()), Leading: s.node.IsLeader(),
		Ready: rd.Ready, NotReady: rd.Reason, LeaderID: string(id), LeaderAddr: string(addr),
		Term: s.raft.CurrentTerm(), CommitIndex: rd.CommitIndex, AppliedIndex: rd.AppliedIndex,
		LeaderCommitIndex: rd.LeaderCommitIndex, Lag: rd.Lag,
		FSMAppliedIndex: s.state.AppliedIndex(), LastLogIndex: s.raft.LastIndex(),
		Counts:    Counts{Txns: c.Txns, Preparing: c.Preparing, Undelivered: c.Undelivered, Leases: c.Leases, Shards: c.Shards},
		StartedAt: s.started, UptimeSeconds: (s.cfg.Clock.Mono() - s.startMono).Seconds(),
	}
	if lc := s.raft.LastContact(); !lc.IsZero() && st.Role != "leader" {
		st.LastContactMs = max(0, s.cfg.Clock.Now().Sub(lc).Milliseconds())
	}
	st.Peers = s.peers(id)
	if ds, ok := s.node.(DriverStatser); ok {
		if d, ok := ds.DriverStats(); ok {
			st.Driver = &DriverStats{Started: d.Started, Committed: d.Committed, Aborted: d.Aborted, Timeouts: d.Timeouts,
				PrepareSends: d.PrepareSends, DecisionSends: d.DecisionSends, StrayReplies: d.StrayReplies}
		}
	}
	return st
}

func (s *Server) peers(leader raft.ServerID) []Peer {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		s.log.Warn("cannot read raft configuration", "err", err)
		return []Peer{}
	}
	servers := f.Configuration().Servers
	out := make([]Peer, 0, len(servers))
	for _, sv := range servers {
		out = append(out, Peer{ID: string(sv.ID), Addr: string(sv.Address), Suffrage: strings.ToLower(sv.Suffrage.String()),
			Leader: sv.ID == leader && leader != "", Self: string(sv.ID) == s.node.ID()})
	}
	return out
}
