// Package cases is the shared table of match proposals and the verdicts the
// default policy bundle gives them. The policy package's unit tests evaluate it
// through policy.Engine; the coordinator's end-to-end tests propose the same
// matches through the whole system and check that the allowed ones commit and
// the denied ones abort with POLICY_DENIED and the same codes.
//
// The cases are written against the default bundle's data (policy/bundles/default/
// data.json): change one and the other together.
//
// For the end-to-end use every case's proposal passes the coordinator's own
// validation (unique players, shards all in Case.Shards: register those first),
// and proposal ids and player ids are unique across the table, so the cases can
// run against one cluster in any order, or concurrently, without contending for
// leases.
package cases

import (
	"fmt"
	"slices"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Case is one proposal and the verdict the default bundle must give it.
type Case struct {
	Name     string
	Proposal *smv1.Proposal
	Shards   []*smv1.ShardInfo
	Allow    bool
	// Codes lists the distinct denial codes of the verdict, sorted; empty when
	// Allow.
	Codes []string
}

// Shards are the shards every case's players live on: s1 and s2 in eu-west, s3
// in us-east.
func Shards() []*smv1.ShardInfo {
	mk := func(id, region string) *smv1.ShardInfo {
		return &smv1.ShardInfo{
			ShardId: id, Region: region, Capacity: 5000, ProtocolVersion: 1,
			State:  smv1.ShardState_SHARD_STATE_ACTIVE,
			Labels: map[string]string{"tier": "standard"},
		}
	}
	return []*smv1.ShardInfo{mk("s1", "eu-west"), mk("s2", "eu-west"), mk("s3", "us-east")}
}

// All returns the table, freshly built: callers may modify what they get.
func All() []Case {
	var out []Case
	add := func(name string, p *smv1.Proposal, allow bool, codes ...string) {
		slices.Sort(codes)
		p.ProposalId = "case-" + name
		out = append(out, Case{Name: name, Proposal: p, Shards: Shards(), Allow: allow, Codes: codes})
	}

	// --- allowed ---
	add("5v5-balanced", fiveVFive("bal"), true)
	add("duel", proposal("duel",
		team(pl("duel-a", "s1", 2000)),
		team(pl("duel-b", "s3", 2100))), true)
	add("raid-of-ten", raid("raid10", 10), true)
	{
		p := fiveVFive("party")
		p.Teams[0].Players[0].Attributes.PartyId = "party-1"
		p.Teams[0].Players[1].Attributes.PartyId = "party-1"
		add("5v5-party-on-one-team", p, true)
	}
	{
		// A us-east player with 70ms to eu-west joins a match the proposer
		// placed in eu-west.
		p := fiveVFive("visit")
		v := p.Teams[1].Players[1]
		v.ShardId, v.Attributes.Region = "s3", "us-east"
		v.Attributes.LatencyMs = map[string]int32{"eu-west": 70, "us-east": 10}
		p.Metadata = map[string]string{"region": "eu-west"}
		add("5v5-visitor-in-requested-region", p, true)
	}
	{
		// Empty region attributes fall back to the shard's region (s3:
		// us-east); without that the match would have no region.
		p := proposal("duel",
			team(pl("fallback-a", "s3", 1800)),
			team(pl("fallback-b", "s3", 1850)))
		for _, t := range p.Teams {
			t.Players[0].Attributes.Region = ""
			t.Players[0].Attributes.LatencyMs = map[string]int32{"us-east": 25}
		}
		add("duel-region-from-shard", p, true)
	}

	// --- denied, one rule at a time ---
	{
		p := fiveVFive("unknown")
		p.Mode = "9v9"
		add("unknown-mode", p, false, "UNKNOWN_MODE")
	}
	{
		p := fiveVFive("closed")
		p.Mode = "ranked-5v5"
		add("mode-closed", p, false, "MODE_CLOSED")
	}
	{
		p := fiveVFive("onesided")
		p.Teams = p.Teams[:1]
		add("team-count", p, false, "TEAM_COUNT")
	}
	{
		p := fiveVFive("short")
		p.Teams[1].Players = p.Teams[1].Players[:4]
		add("team-size", p, false, "TEAM_SIZE")
	}
	add("raid-too-small", raid("raid9", 9), false, "TEAM_SIZE")
	{
		p := fiveVFive("spread")
		p.Teams[0].Players[0].Attributes.Mmr = 1800
		p.Teams[1].Players[4].Attributes.Mmr = 2300 // 2300 - 1470 = 830 > 800
		add("mmr-spread", p, false, "MMR_SPREAD")
	}
	{
		p := fiveVFive("gap")
		for _, x := range p.Teams[1].Players {
			x.Attributes.Mmr += 160 // team 2 averages 1670 against 1508
		}
		add("team-mmr-gap", p, false, "TEAM_MMR_GAP")
	}
	{
		p := fiveVFive("slow")
		p.Teams[1].Players[1].Attributes.LatencyMs["eu-west"] = 95
		add("latency-over-ceiling", p, false, "LATENCY")
	}
	{
		p := fiveVFive("unmeasured")
		p.Teams[1].Players[1].Attributes.LatencyMs = map[string]int32{"us-east": 20}
		add("latency-unmeasured", p, false, "LATENCY")
	}
	{
		p := fiveVFive("mixed")
		v := p.Teams[1].Players[1]
		v.ShardId, v.Attributes.Region = "s3", "us-east"
		v.Attributes.LatencyMs = map[string]int32{"eu-west": 70, "us-east": 10}
		add("region-ambiguous", p, false, "REGION")
	}
	{
		p := fiveVFive("far")
		p.Metadata = map[string]string{"region": "sa-east"}
		add("region-not-offered", p, false, "LATENCY", "REGION")
	}
	{
		p := fiveVFive("split")
		p.Teams[0].Players[0].Attributes.PartyId = "party-2"
		p.Teams[1].Players[0].Attributes.PartyId = "party-2"
		add("party-split", p, false, "PARTY_SPLIT")
	}
	{
		// griefer-7 blocklists streamer-1 in data.json.
		p := fiveVFive("block")
		p.Teams[0].Players[0].PlayerId = "griefer-7"
		p.Teams[1].Players[0].PlayerId = "streamer-1"
		add("blocklisted-pair", p, false, "BLOCKLISTED")
	}
	{
		p := fiveVFive("share") // s1 supplies 7 of 10 > 60%
		p.Teams[0].Players[2].ShardId = "s1"
		p.Teams[1].Players[2].ShardId = "s1"
		p.Teams[1].Players[3].ShardId = "s1"
		add("shard-share", p, false, "SHARD_SHARE")
	}

	// --- denied by several rules at once ---
	{
		p := fiveVFive("multi")
		p.Teams[0].Players[0].PlayerId = "smurf-3"
		p.Teams[0].Players[1].PlayerId = "smurf-4"
		p.Teams[1].Players[0].Attributes.Mmr = 3000
		p.Teams[1].Players[2].Attributes.LatencyMs["eu-west"] = 200
		add("several-rules", p, false, "BLOCKLISTED", "LATENCY", "MMR_SPREAD", "TEAM_MMR_GAP")
	}
	return out
}

// pl is a player of region eu-west with 30ms to eu-west.
func pl(id, shard string, mmr int32) *smv1.Player {
	return &smv1.Player{
		PlayerId: id,
		ShardId:  shard,
		Attributes: &smv1.PlayerAttributes{
			Mmr:       mmr,
			Region:    "eu-west",
			LatencyMs: map[string]int32{"eu-west": 30},
		},
	}
}

func team(ps ...*smv1.Player) *smv1.Team { return &smv1.Team{Players: ps} }

func proposal(mode string, teams ...*smv1.Team) *smv1.Proposal {
	return &smv1.Proposal{Mode: mode, Teams: teams, MatchTtlMs: 60_000}
}

// fiveVFive is a 5v5 every rule accepts: team averages 1508 and 1510, MMR
// 1470..1550, 4 players from s1, 3 from s2, 3 from s3. Player ids are prefixed
// so that no two cases share a player.
func fiveVFive(prefix string) *smv1.Proposal {
	id := func(s string) string { return prefix + "-" + s }
	return proposal("5v5",
		team(pl(id("a1"), "s1", 1500), pl(id("a2"), "s1", 1520), pl(id("a3"), "s2", 1480), pl(id("a4"), "s2", 1550), pl(id("a5"), "s3", 1490)),
		team(pl(id("b1"), "s1", 1510), pl(id("b2"), "s1", 1530), pl(id("b3"), "s2", 1470), pl(id("b4"), "s3", 1540), pl(id("b5"), "s3", 1500)),
	)
}

// raid is a one-team raid of n players spread over s1..s3.
func raid(prefix string, n int) *smv1.Proposal {
	ps := make([]*smv1.Player, n)
	for i := range ps {
		ps[i] = pl(fmt.Sprintf("%s-%02d", prefix, i+1), fmt.Sprintf("s%d", i%3+1), 1500)
	}
	return proposal("raid", team(ps...))
}
