package shardsvc

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Shape is a match format the LoadGen proposes, with the limits the policy puts on its
// mode. The driver builds proposals inside the limits, except the ones it means to be
// denied.
type Shape struct {
	Mode string
	// Weight is the shape's share of the proposals, relative to the other shapes.
	Weight float64
	// Teams and TeamSize give the match's layout.
	Teams, TeamSize int
	// MaxMMRSpread bounds the highest minus the lowest MMR (0: no bound).
	MaxMMRSpread int32
	// MaxTeamGap bounds the difference between teams' average MMR (0: no bound).
	MaxTeamGap int32
	// MaxLatencyMs bounds every player's latency to the match's region.
	MaxLatencyMs int32
	// MaxShardShare bounds the share of players one shard supplies (0: none, but
	// matches always span at least two shards).
	MaxShardShare float64
}

// DefaultShapes are mostly cross-shard duels with some 5v5s, with the limits of the
// "duel" and "5v5" modes of the default policy bundle (policy/bundles/default/
// data.json; a test keeps the two in step).
func DefaultShapes() []Shape {
	return []Shape{
		{Mode: "duel", Weight: 0.9, Teams: 2, TeamSize: 1, MaxMMRSpread: 300, MaxLatencyMs: 120},
		{Mode: "5v5", Weight: 0.1, Teams: 2, TeamSize: 5, MaxMMRSpread: 800, MaxTeamGap: 150, MaxLatencyMs: 80, MaxShardShare: 0.6},
	}
}

func (s Shape) players() int { return s.Teams * s.TeamSize }

func (s Shape) validate(shards int) error {
	n := s.players()
	switch {
	case s.Mode == "":
		return fmt.Errorf("shardsvc: Shape.Mode is empty")
	case s.Weight < 0:
		return fmt.Errorf("shardsvc: Shape %q: Weight (%v) must be >= 0", s.Mode, s.Weight)
	case s.Teams < 1 || s.TeamSize < 1 || n < 2:
		return fmt.Errorf("shardsvc: Shape %q: Teams×TeamSize (%d×%d) must be at least 2 players", s.Mode, s.Teams, s.TeamSize)
	case shards*s.perShardCap() < n:
		return fmt.Errorf("shardsvc: Shape %q: %d players cannot come from %d shards with MaxShardShare %v", s.Mode, n, shards, s.MaxShardShare)
	}
	return nil
}

// perShardCap is the most players one shard may supply: the share bound, and never
// all of them (a match spans shards).
func (s Shape) perShardCap() int {
	n := s.players()
	c := n - 1
	if s.MaxShardShare > 0 {
		c = min(c, int(s.MaxShardShare*float64(n)+1e-9))
	}
	return c
}

// quotas deals the shape's players out to shards round-robin from a random start,
// skipping shards at their cap: 10 players over 3 shards give 4, 3, 3.
func (s Shape) quotas(shards int, rng *rand.Rand) []int {
	q := make([]int, shards)
	order := rng.Perm(shards)
	c := s.perShardCap()
	for left, i := s.players(), 0; left > 0; i++ {
		if k := order[i%shards]; q[k] < c {
			q[k]++
			left--
		}
	}
	return q
}

// build makes a proposal of this shape from the given players, in the match region
// region: it deals the players into teams by snake draft on MMR, then swaps players
// between teams while that narrows the gap between team averages. It returns nil if
// the teams cannot be balanced within MaxTeamGap (unless violate is set).
func (s Shape) build(id string, region string, ttlMs int64, ps []Profile, violate bool) *smv1.Proposal {
	sort.Slice(ps, func(i, j int) bool { return ps[i].MMR > ps[j].MMR })
	teams := make([][]Profile, s.Teams)
	for i, p := range ps {
		round, pos := i/s.Teams, i%s.Teams
		if round%2 == 1 {
			pos = s.Teams - 1 - pos
		}
		teams[pos] = append(teams[pos], p)
	}
	balance(teams)
	if s.MaxTeamGap > 0 && teamGap(teams) > float64(s.MaxTeamGap) && !violate {
		return nil
	}
	p := &smv1.Proposal{ProposalId: id, Mode: s.Mode, MatchTtlMs: ttlMs, Metadata: map[string]string{"region": region}}
	for _, t := range teams {
		team := &smv1.Team{}
		for _, pl := range t {
			team.Players = append(team.Players, &smv1.Player{PlayerId: pl.ID, ShardId: pl.Shard,
				Attributes: &smv1.PlayerAttributes{Mmr: pl.MMR, Region: pl.Region, LatencyMs: maps.Clone(pl.LatencyMs)}})
		}
		p.Teams = append(p.Teams, team)
	}
	return p
}

// balance swaps single players between the two teams furthest apart while a swap
// narrows the gap, a few rounds at most.
func balance(teams [][]Profile) {
	if len(teams) < 2 {
		return
	}
	for round := 0; round < 8; round++ {
		hi, lo := extremes(teams)
		best, bi, bj := teamGap(teams), -1, -1
		for i := range teams[hi] {
			for j := range teams[lo] {
				teams[hi][i], teams[lo][j] = teams[lo][j], teams[hi][i]
				if g := teamGap(teams); g < best {
					best, bi, bj = g, i, j
				}
				teams[hi][i], teams[lo][j] = teams[lo][j], teams[hi][i]
			}
		}
		if bi < 0 {
			return
		}
		teams[hi][bi], teams[lo][bj] = teams[lo][bj], teams[hi][bi]
	}
}

func avgMMR(t []Profile) float64 {
	var sum float64
	for _, p := range t {
		sum += float64(p.MMR)
	}
	return sum / float64(max(len(t), 1))
}

// extremes returns the indexes of the teams with the highest and lowest averages.
func extremes(teams [][]Profile) (hi, lo int) {
	for i, t := range teams {
		if avgMMR(t) > avgMMR(teams[hi]) {
			hi = i
		}
		if avgMMR(t) < avgMMR(teams[lo]) {
			lo = i
		}
	}
	return hi, lo
}

func teamGap(teams [][]Profile) float64 {
	hi, lo := extremes(teams)
	return avgMMR(teams[hi]) - avgMMR(teams[lo])
}

// pickShape chooses a shape by weight.
func pickShape(shapes []Shape, rng *rand.Rand) Shape {
	var total float64
	for _, s := range shapes {
		total += s.Weight
	}
	x := rng.Float64() * total
	for _, s := range shapes {
		if x < s.Weight {
			return s
		}
		x -= s.Weight
	}
	return shapes[len(shapes)-1]
}

// spreadShapes returns the shapes with an MMR bound, the ones a deliberate violation
// can break.
func spreadShapes(shapes []Shape) []Shape {
	return slices.DeleteFunc(slices.Clone(shapes), func(s Shape) bool { return s.MaxMMRSpread == 0 || s.Weight == 0 })
}
