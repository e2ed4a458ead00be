package coordinator

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// ValidateProposal checks a proposal against lim without looking at any state. It
// returns an *InvalidError naming the first problem.
func ValidateProposal(p *smv1.Proposal, lim Limits) error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if p == nil {
		return bad("proposal", "missing")
	}
	if n := proto.Size(p); n > lim.MaxProposalBytes {
		return bad("proposal", "%d bytes encoded, over the limit of %d", n, lim.MaxProposalBytes)
	}
	if p.GetProposalId() == "" || len(p.GetProposalId()) > lim.MaxIDLength {
		return bad("proposal_id", "must be 1..%d bytes", lim.MaxIDLength)
	}
	ttl := time.Duration(p.GetMatchTtlMs()) * time.Millisecond
	if p.GetMatchTtlMs() <= 0 || ttl > lim.MaxMatchTTL {
		return bad("match_ttl_ms", "%d must be in (0, %d]", p.GetMatchTtlMs(), lim.MaxMatchTTL.Milliseconds())
	}
	if pt := p.GetPrepareTimeoutMs(); pt < 0 || time.Duration(pt)*time.Millisecond > lim.MaxPrepareTimeout {
		return bad("prepare_timeout_ms", "%d must be in [0, %d]", pt, lim.MaxPrepareTimeout.Milliseconds())
	}
	if len(p.GetTeams()) == 0 {
		return bad("teams", "no teams")
	}
	seen := make(map[string]bool)
	for ti, t := range p.GetTeams() {
		if len(t.GetPlayers()) == 0 {
			return bad(fmt.Sprintf("teams[%d]", ti), "no players")
		}
		for pi, pl := range t.GetPlayers() {
			field := fmt.Sprintf("teams[%d].players[%d]", ti, pi)
			if pl.GetPlayerId() == "" || len(pl.GetPlayerId()) > lim.MaxIDLength {
				return bad(field+".player_id", "must be 1..%d bytes", lim.MaxIDLength)
			}
			if pl.GetShardId() == "" || len(pl.GetShardId()) > lim.MaxIDLength {
				return bad(field+".shard_id", "must be 1..%d bytes", lim.MaxIDLength)
			}
			if seen[pl.GetPlayerId()] {
				return bad(field+".player_id", "player %q appears twice", pl.GetPlayerId())
			}
			seen[pl.GetPlayerId()] = true
		}
	}
	if len(seen) > lim.MaxPlayers {
		return bad("teams", "%d players, over the limit of %d", len(seen), lim.MaxPlayers)
	}
	return nil
}

// prepareTimeout is the proposal's prepare timeout or the default.
func prepareTimeout(p *smv1.Proposal, lim Limits) time.Duration {
	if ms := p.GetPrepareTimeoutMs(); ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return lim.DefaultPrepareTimeout
}

// MaxShardProtocolVersion is the newest shard protocol this coordinator speaks.
// ShardInfo.protocol_version 0 (a shard that does not say) is taken as version 1.
const MaxShardProtocolVersion = 1

// ValidateShardInfo checks a shard's registration without looking at any state: a
// protocol version this coordinator speaks, a known state and a non-negative
// capacity. It returns an *InvalidError naming the first problem.
func ValidateShardInfo(s *smv1.ShardInfo) error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case s == nil:
		return bad("shard", "missing")
	case s.GetShardId() == "":
		return bad("shard_id", "empty")
	case s.GetProtocolVersion() > MaxShardProtocolVersion:
		return bad("protocol_version", "%d; this coordinator speaks versions up to %d", s.GetProtocolVersion(), MaxShardProtocolVersion)
	case s.GetCapacity() < 0:
		return bad("capacity", "%d must be >= 0", s.GetCapacity())
	}
	if _, ok := smv1.ShardState_name[int32(s.GetState())]; !ok {
		return bad("state", "unknown state %d", s.GetState())
	}
	return nil
}
