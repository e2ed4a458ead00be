package policy

import (
	"math/big"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Keys of the facts object, made once.
var (
	kPlayers         = ast.StringTerm("players")
	kTeams           = ast.StringTerm("teams")
	kPlayerIDs       = ast.StringTerm("player_ids")
	kDuplicates      = ast.StringTerm("duplicates")
	kTeamPlayers     = ast.StringTerm("team_players")
	kTeamMMRSums     = ast.StringTerm("team_mmr_sums")
	kTeamPlayersMin  = ast.StringTerm("team_players_min")
	kTeamPlayersMax  = ast.StringTerm("team_players_max")
	kTeamMMRGap      = ast.StringTerm("team_mmr_gap")
	kMMRMin          = ast.StringTerm("mmr_min")
	kMMRMax          = ast.StringTerm("mmr_max")
	kMMRSpread       = ast.StringTerm("mmr_spread")
	kRegions         = ast.StringTerm("regions")
	kRegionless      = ast.StringTerm("regionless")
	kLatencyMaxAll   = ast.StringTerm("latency_max_all")
	kLatencyMax      = ast.StringTerm("latency_max")
	kParties         = ast.StringTerm("parties")
	kShardPlayers    = ast.StringTerm("shard_players")
	kShardPlayersMax = ast.StringTerm("shard_players_max")
	kShardShareMax   = ast.StringTerm("shard_share_max")
)

// Empty collections are shared: OPA never modifies its input (the queue
// configs are shared between evaluations in the same way).
var (
	emptySet    = ast.NewTerm(ast.NewSet())
	emptyObject = ast.NewTerm(ast.NewObject())
)

// facts are aggregates of the proposal that the rules' common path reads
// instead of walking every player: counting in Go costs a fraction of a
// comprehension in Rego, and comparing one fact with one knob is all most
// rules do for an allowed match. They are neutral facts, not judgements; the
// bundle defines the very same document in Rego (computed_facts in
// match.rego), which its tests use, and TestFactsAgreeWithRego holds the two
// together.
//
//	players            number of player slots
//	teams              number of teams
//	player_ids         set of player ids
//	duplicates         set of player ids that take more than one slot
//	team_players       per team, its number of players
//	team_mmr_sums      per team, the sum of its players' MMR
//	team_players_min   fewest and most players on a team (absent without
//	team_players_max     teams)
//	team_mmr_gap       highest team average MMR minus the lowest (absent
//	                   when no team has players), in OPA's own arithmetic
//	mmr_min/max        lowest and highest MMR, and the difference (absent
//	mmr_spread           without players)
//	regions            set of the players' regions: attributes.region, or the
//	                   region of the player's shard when that is empty
//	regionless         number of players with neither
//	latency_max        per region anyone measured, the highest latency
//	latency_max_all    the same for the regions every player measured
//	parties            per non-empty party_id: set of the team indexes it is on
//	shard_players      per shard: number of players it supplies
//	shard_players_max  the most players one shard supplies, and that over
//	shard_share_max      players (absent without players), in OPA's own
//	                     arithmetic
//
// It allocates little, since every allocation brings the next garbage
// collection closer: terms are allocated in blocks, and a match names a
// handful of regions, shards and parties, so small slices (on the stack while
// they fit) searched linearly stand in for maps.
func facts(p *smv1.Proposal, shards []*smv1.ShardInfo) ast.Value {
	teams := p.GetTeams()
	n := 0
	for _, t := range teams {
		n += len(t.GetPlayers())
	}
	var (
		regionBuf  [4]string
		latBuf     [4]latencyCount
		partyBuf   [4]partyTeams
		shardBuf   [16]keyCount
		regions    = regionBuf[:0]
		latency    = latBuf[:0]
		parties    = partyBuf[:0]
		shardCount = shardBuf[:0]

		regionless     int
		mmrMin, mmrMax int32
		dups           []*ast.Term
		ids            = ast.NewSetWithCapacity(n)
		// One block for the terms of the ids and of the teams' MMR sums.
		terms = make([]ast.Term, n+len(teams))
		k     int // player index
	)
	idTerms, teamTerms := terms[:n], terms[n:]
	teamSizes := make([]*ast.Term, 2*len(teams))
	var sumBuf [8]int64
	sums := sumBuf[:0]
	for i, t := range teams {
		var sum int64
		for _, pl := range t.GetPlayers() {
			a := pl.GetAttributes() // nil-safe getters: a nil message reads as defaults
			id := &idTerms[k]
			id.Value = ast.String(pl.GetPlayerId())
			l := ids.Len()
			if ids.Add(id); ids.Len() == l && !slices.ContainsFunc(dups, id.Equal) {
				dups = append(dups, id) // taken before: a duplicate
			}
			m := a.GetMmr()
			sum += int64(m)
			if k == 0 || m < mmrMin {
				mmrMin = m
			}
			if k == 0 || m > mmrMax {
				mmrMax = m
			}
			k++
			r := a.GetRegion()
			if r == "" {
				for _, s := range shards {
					if s.GetShardId() == pl.GetShardId() {
						r = s.GetRegion()
						break
					}
				}
			}
			if r == "" {
				regionless++
			} else if !slices.Contains(regions, r) {
				regions = append(regions, r)
			}
			for region, ms := range a.GetLatencyMs() {
				j := slices.IndexFunc(latency, func(l latencyCount) bool { return l.region == region })
				if j < 0 {
					latency = append(latency, latencyCount{region: region, max: ms})
					j = len(latency) - 1
				}
				latency[j].measured++
				latency[j].max = max(latency[j].max, ms)
			}
			if party := a.GetPartyId(); party != "" {
				j := slices.IndexFunc(parties, func(x partyTeams) bool { return x.party == party })
				if j < 0 {
					parties = append(parties, partyTeams{party: party})
					j = len(parties) - 1
				}
				if !slices.Contains(parties[j].teams, i) {
					parties[j].teams = append(parties[j].teams, i)
				}
			}
			j := slices.IndexFunc(shardCount, func(c keyCount) bool { return c.key == pl.GetShardId() })
			if j < 0 {
				shardCount = append(shardCount, keyCount{key: pl.GetShardId()})
				j = len(shardCount) - 1
			}
			shardCount[j].n++
		}
		teamSizes[i] = ast.InternedTerm(len(t.GetPlayers()))
		sums = append(sums, sum)
		setInt(&teamTerms[i], sum)
		teamSizes[len(teams)+i] = &teamTerms[i]
	}

	b := newFactsBuilder()
	b.addTerm(kPlayers, ast.InternedTerm(n))
	b.addTerm(kTeams, ast.InternedTerm(len(teams)))
	b.add(kPlayerIDs, ids)
	if len(dups) == 0 {
		b.addTerm(kDuplicates, emptySet)
	} else {
		b.add(kDuplicates, ast.NewSet(dups...))
	}
	b.add(kTeamPlayers, ast.NewArray(teamSizes[:len(teams)]...))
	b.add(kTeamMMRSums, ast.NewArray(teamSizes[len(teams):]...))
	if len(teams) > 0 {
		lo, hi := len(teams[0].GetPlayers()), len(teams[0].GetPlayers())
		for _, t := range teams[1:] {
			lo, hi = min(lo, len(t.GetPlayers())), max(hi, len(t.GetPlayers()))
		}
		b.addTerm(kTeamPlayersMin, ast.InternedTerm(lo))
		b.addTerm(kTeamPlayersMax, ast.InternedTerm(hi))
	}
	if gap := teamMMRGap(teams, sums); gap != nil {
		b.add(kTeamMMRGap, gap)
	}
	if n > 0 {
		b.add(kMMRMin, intValue(int64(mmrMin)))
		b.add(kMMRMax, intValue(int64(mmrMax)))
		b.add(kMMRSpread, intValue(int64(mmrMax)-int64(mmrMin)))
	}

	strs := make([]ast.Term, len(regions)+len(latency)+len(parties)+len(shardCount))
	str := func(s string) *ast.Term {
		t := &strs[0]
		strs = strs[1:]
		t.Value = ast.String(s)
		return t
	}
	regionTerms := make([]*ast.Term, len(regions))
	for i, r := range regions {
		regionTerms[i] = str(r)
	}
	b.add(kRegions, ast.NewSet(regionTerms...))
	b.addTerm(kRegionless, ast.InternedTerm(regionless))

	if len(latency) == 0 {
		b.addTerm(kLatencyMax, emptyObject)
		b.addTerm(kLatencyMaxAll, emptyObject)
	} else {
		latTerms := make([]ast.Term, len(latency))
		items := make([][2]*ast.Term, 2*len(latency))
		all := items[len(latency):len(latency)]
		for i, l := range latency {
			setInt(&latTerms[i], int64(l.max))
			items[i] = [2]*ast.Term{str(l.region), &latTerms[i]}
			if l.measured == n {
				all = append(all, items[i])
			}
		}
		b.add(kLatencyMax, ast.NewObject(items[:len(latency)]...))
		if len(all) == 0 {
			b.addTerm(kLatencyMaxAll, emptyObject)
		} else {
			b.add(kLatencyMaxAll, ast.NewObject(all...))
		}
	}

	if len(parties) == 0 {
		b.addTerm(kParties, emptyObject)
	} else {
		partyTerms := make([]ast.Term, len(parties))
		items := make([][2]*ast.Term, len(parties))
		for i, party := range parties {
			idx := make([]*ast.Term, len(party.teams))
			for j, t := range party.teams {
				idx[j] = ast.InternedTerm(t)
			}
			partyTerms[i].Value = ast.NewSet(idx...)
			items[i] = [2]*ast.Term{str(party.party), &partyTerms[i]}
		}
		b.add(kParties, ast.NewObject(items...))
	}

	items := make([][2]*ast.Term, len(shardCount))
	most := 0
	for i, s := range shardCount {
		items[i] = [2]*ast.Term{str(s.key), ast.InternedTerm(s.n)}
		most = max(most, s.n)
	}
	b.add(kShardPlayers, ast.NewObject(items...))
	if n > 0 {
		b.addTerm(kShardPlayersMax, ast.InternedTerm(most))
		b.add(kShardShareMax, shareOf(most, n))
	}
	return ast.NewObject(b.items...)
}

type (
	keyCount struct {
		key string
		n   int
	}
	latencyCount struct {
		region   string
		measured int
		max      int32
	}
	partyTeams struct {
		party string
		teams []int
	}
)

// factsBuilder collects the items of the facts object; the terms of its
// values come from one block.
type factsBuilder struct {
	items [][2]*ast.Term
	terms []ast.Term
}

const maxFacts = 21

func newFactsBuilder() *factsBuilder {
	return &factsBuilder{items: make([][2]*ast.Term, 0, maxFacts), terms: make([]ast.Term, 0, maxFacts)}
}

func (b *factsBuilder) add(k *ast.Term, v ast.Value) {
	b.terms = append(b.terms, ast.Term{Value: v})
	b.addTerm(k, &b.terms[len(b.terms)-1])
}

func (b *factsBuilder) addTerm(k, v *ast.Term) { b.items = append(b.items, [2]*ast.Term{k, v}) }

// intValue is i as an AST number, shared for the small ints OPA interns.
func intValue(i int64) ast.Value {
	if 0 <= i && i <= 512 {
		return ast.InternedTerm(int(i)).Value
	}
	return ast.Number(strconv.FormatInt(i, 10))
}

func setInt(t *ast.Term, i int64) { t.Value = intValue(i) }

// teamMMRGap is max(avgs) - min(avgs) over the average MMR of each team with
// players (sums[i] over its size), or nil if no team has players.
func teamMMRGap(teams []*smv1.Team, sums []int64) ast.Value {
	lo, hi := -1, -1
	for i, t := range teams {
		n := int64(len(t.GetPlayers()))
		if n == 0 {
			continue
		}
		// Compare the averages exactly (the rounded quotients order the same
		// way, rounding being monotonic).
		if hi < 0 || sums[i]*int64(len(teams[hi].GetPlayers())) > sums[hi]*n {
			hi = i
		}
		if lo < 0 || sums[i]*int64(len(teams[lo].GetPlayers())) < sums[lo]*n {
			lo = i
		}
	}
	if hi < 0 {
		return nil
	}
	a := quotient(sums[hi], int64(len(teams[hi].GetPlayers())))
	b := quotient(sums[lo], int64(len(teams[lo].GetPlayers())))
	return a.minus(&b)
}

// opaNumber is a number as OPA's arithmetic leaves it: an int, or a big.Float
// of 64 bits of mantissa, rounded to nearest even (the precision OPA gives
// numbers it parses). quotient and minus compute what OPA's / and - give for
// the same operands (TestFactsAgreeWithRego holds them to it), without OPA's
// round trips through decimal strings.
type opaNumber struct {
	isInt bool
	i     int64
	f     big.Float
}

// quotient is x / y for y > 0: an int when y divides x (and x is not 0, whose
// quotient OPA computes as a float), else the rounded quotient.
func quotient(x, y int64) opaNumber {
	if x != 0 && x%y == 0 {
		return opaNumber{isInt: true, i: x / y}
	}
	var q opaNumber
	var fx, fy big.Float
	q.f.Quo(fx.SetInt64(x), fy.SetInt64(y))
	return q
}

// minus is a - b.
func (a *opaNumber) minus(b *opaNumber) ast.Value {
	if a.isInt && b.isInt {
		return intValue(a.i - b.i)
	}
	var d big.Float
	d.Sub(a.float(), b.float())
	return builtins.FloatToNumber(&d)
}

func (a *opaNumber) float() *big.Float {
	if a.isInt {
		a.f.SetInt64(a.i)
	}
	return &a.f
}

func (a opaNumber) value() ast.Value {
	if a.isInt {
		return intValue(a.i)
	}
	return builtins.FloatToNumber(&a.f)
}

// shareOf is facts.shard_share_max, most / n. Formatting a big.Float takes
// some twenty allocations, and a coordinator sees the same few ratios over
// and over (4 of 10, 6 of 10, ...), so the numbers are kept in a small
// direct-mapped cache: a lookup is an atomic load, and a collision just
// computes the number again.
func shareOf(most, n int) ast.Value {
	slot := &shareCache[(most*131+n)%len(shareCache)]
	if e := slot.Load(); e != nil && e.most == most && e.n == n {
		return e.v
	}
	e := &shareEntry{most: most, n: n, v: quotient(int64(most), int64(n)).value()}
	slot.Store(e)
	return e.v
}

type shareEntry struct {
	most, n int
	v       ast.Value
}

var shareCache [1024]atomic.Pointer[shareEntry]
