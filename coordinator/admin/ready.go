package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// LeaderIndex is what the leading node says of its log: who it is, its term and its
// commit index; and where its admin API is ("" if it advertises none).
type LeaderIndex struct {
	NodeID      string
	Term        uint64
	CommitIndex uint64
	AdminURL    string
}

// LeaderIndexSource tells a follower the leader's commit index. A follower's own
// commit index is no measure of how far behind it is: a restarted follower knows the
// leader from its first heartbeat long before it has received the entries it missed
// (heartbeats carry no commit index), so its own commit and applied indexes agree
// while thousands of entries are still to come. natsapi.LeaderIndexClient implements
// it over NATS. Implementations bound and cache their answer: readiness asks on every
// /readyz, /v1/status and scrape.
type LeaderIndexSource interface {
	LeaderIndex(ctx context.Context) (LeaderIndex, error)
}

// LeaderIndexFunc adapts a function to LeaderIndexSource.
type LeaderIndexFunc func(ctx context.Context) (LeaderIndex, error)

// LeaderIndex calls f.
func (f LeaderIndexFunc) LeaderIndex(ctx context.Context) (LeaderIndex, error) { return f(ctx) }

// DefaultLeaderIndexTimeout bounds one LeaderIndexSource call made for readiness.
const DefaultLeaderIndexTimeout = 2 * time.Second

// readiness is /readyz's verdict.
type readiness struct {
	Ready        bool   `json:"ready"`
	Reason       string `json:"reason,omitempty"`
	LeaderID     string `json:"leader_id,omitempty"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LeaderCommitIndex is the leader's commit index (this node's own on the leader;
	// 0 while unknown); Lag is how many entries AppliedIndex trails the higher of it
	// and CommitIndex.
	LeaderCommitIndex uint64 `json:"leader_commit_index"`
	Lag               uint64 `json:"lag"`
}

// readiness: ready means caught up with the leader. On the leader: it has finished
// taking over (barrier, recovery). On a follower: a leader is known, and this node's
// applied index is within MaxApplyLag of the leader's commit index, as the
// LeaderIndexSource reports it (answered by that same leader). Without a
// LeaderIndexSource a follower measures against its own commit index, which a
// restarted follower gets wrong (see LeaderIndexSource).
func (s *Server) readiness(ctx context.Context) readiness {
	_, id := s.raft.LeaderWithID()
	state := s.raft.State()
	rd := readiness{LeaderID: string(id), CommitIndex: s.raft.CommitIndex(), AppliedIndex: s.raft.AppliedIndex()}
	lagBehind := func(target uint64) {
		target = max(target, rd.CommitIndex)
		if target > rd.AppliedIndex {
			rd.Lag = target - rd.AppliedIndex
		}
	}
	switch {
	case state == raft.Shutdown:
		rd.Reason = "raft is shut down"
		return rd
	case id == "":
		rd.Reason = "no leader known"
		return rd
	case state == raft.Leader:
		rd.LeaderCommitIndex = rd.CommitIndex
		lagBehind(rd.CommitIndex)
		if !s.node.IsLeader() {
			rd.Reason = "leader elected, still taking over (barrier and recovery)"
			return rd
		}
		rd.Ready = true
		return rd
	}
	if s.cfg.LeaderIndex == nil {
		rd.LeaderCommitIndex = rd.CommitIndex
	} else {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderIndexTimeout)
		defer cancel()
		li, err := s.cfg.LeaderIndex.LeaderIndex(ctx)
		switch {
		case err != nil:
			rd.Reason = fmt.Sprintf("the leader's commit index is unknown: %v", err)
			return rd
		case li.NodeID != string(id):
			rd.Reason = fmt.Sprintf("the commit index came from %q, but this node follows %q", li.NodeID, id)
			return rd
		}
		rd.LeaderCommitIndex = li.CommitIndex
	}
	lagBehind(rd.LeaderCommitIndex)
	if rd.Lag > s.cfg.MaxApplyLag {
		rd.Reason = fmt.Sprintf("catching up with the leader: applied %d of %d committed (lag %d > %d)",
			rd.AppliedIndex, rd.AppliedIndex+rd.Lag, rd.Lag, s.cfg.MaxApplyLag)
		return rd
	}
	rd.Ready = true
	return rd
}
