package shardsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

// fakeCoordinator is a Proposer that decides at once and plays the shards' part
// itself: it commits a proposal into every World unless a player is taken, in which
// case it aborts with PLAYER_LEASED, and it denies MMR spreads over the shape's limit.
type fakeCoordinator struct {
	worlds map[string]*World
	block  chan struct{} // if set, Propose waits for it

	mu                 sync.Mutex
	leased             map[string]string // player → txid
	seq                int
	renews, releases   map[string]int
	proposed, committs int
}

func newFakeCoordinator(ws ...*World) *fakeCoordinator {
	f := &fakeCoordinator{worlds: map[string]*World{}, leased: map[string]string{}, renews: map[string]int{}, releases: map[string]int{}}
	for _, w := range ws {
		f.worlds[w.ShardID()] = w
	}
	return f
}

func (f *fakeCoordinator) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.proposed++
	d := &smv1.Decision{Txid: fmt.Sprintf("tx-%d", f.seq), ProposalId: p.GetProposalId(), Outcome: smv1.Outcome_OUTCOME_ABORTED}
	lo, hi := int32(1<<30), int32(0)
	for _, t := range p.GetTeams() {
		for _, pl := range t.GetPlayers() {
			lo, hi = min(lo, pl.GetAttributes().GetMmr()), max(hi, pl.GetAttributes().GetMmr())
			if _, taken := f.leased[pl.GetPlayerId()]; taken {
				d.Reason = smv1.Reason_REASON_PLAYER_LEASED
			}
		}
	}
	limit := map[string]int32{"duel": 300, "5v5": 800}[p.GetMode()]
	if hi-lo > limit {
		d.Reason = smv1.Reason_REASON_POLICY_DENIED
	}
	if d.Reason != smv1.Reason_REASON_UNSPECIFIED {
		return d, nil
	}
	byShard := map[string][]*smv1.ShardPlayer{}
	for _, t := range p.GetTeams() {
		for _, pl := range t.GetPlayers() {
			byShard[pl.GetShardId()] = append(byShard[pl.GetShardId()], &smv1.ShardPlayer{PlayerId: pl.GetPlayerId(), FencingToken: uint64(f.seq)})
		}
	}
	for sh, ps := range byShard {
		if rej, _ := f.worlds[sh].Prepare(ctx, d.Txid, ps); rej != nil {
			for s2, ps2 := range byShard {
				_ = f.worlds[s2].Abort(ctx, d.Txid, ps2)
			}
			d.Reason = smv1.Reason_REASON_SHARD_REJECTED
			for _, r := range rej {
				d.Players = append(d.Players, &smv1.PlayerDetail{PlayerId: r.GetPlayerId(), Code: r.GetCode()})
			}
			return d, nil
		}
	}
	for sh, ps := range byShard {
		_ = f.worlds[sh].Commit(ctx, d.Txid, ps)
		for _, p := range ps {
			f.leased[p.GetPlayerId()] = d.Txid
		}
	}
	f.committs++
	d.Outcome, d.Reason = smv1.Outcome_OUTCOME_COMMITTED, smv1.Reason_REASON_UNSPECIFIED
	return d, nil
}

func (f *fakeCoordinator) Renew(_ context.Context, txid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renews[txid]++
	return nil
}

func (f *fakeCoordinator) Release(_ context.Context, txid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.releases[txid]++; f.releases[txid] > 1 {
		return errors.New("released twice")
	}
	for p, t := range f.leased {
		if t == txid {
			delete(f.leased, p)
		}
	}
	return nil
}

func testWorlds(t *testing.T, clk clock.Clock, players int) []*World {
	t.Helper()
	var ws []*World
	for i, region := range []string{"eu-west", "eu-west", "us-east"} {
		c := DefaultWorldConfig()
		c.ShardID, c.Region, c.Clock, c.Players, c.Seed = fmt.Sprintf("s%d", i+1), region, clk, players, 3
		w, err := NewWorld(c)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

func testDriver(t *testing.T, clk clock.Clock, p Proposer, ws []*World, tweak func(*LoadGenConfig)) *LoadGen {
	t.Helper()
	c := DefaultLoadGenConfig()
	c.Proposer, c.Worlds, c.Clock, c.Seed = p, ws, clk, 11
	if tweak != nil {
		tweak(&c)
	}
	d, err := NewLoadGen(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverConfigValidateNamesField(t *testing.T) {
	ws := testWorlds(t, clock.NewFake(epoch), 10)
	for field, tweak := range map[string]func(*LoadGenConfig){
		"Proposer":       func(c *LoadGenConfig) { c.Proposer = nil },
		"Worlds":         func(c *LoadGenConfig) { c.Worlds = c.Worlds[:1] },
		"Rate":           func(c *LoadGenConfig) { c.Rate = 0 },
		"MaxInFlight":    func(c *LoadGenConfig) { c.MaxInFlight = 0 },
		"HotShare":       func(c *LoadGenConfig) { c.HotShare = -1 },
		"ViolationShare": func(c *LoadGenConfig) { c.ViolationShare = 1.5 },
		"MatchTTL":       func(c *LoadGenConfig) { c.MatchTTL = 0 },
		"Shapes":         func(c *LoadGenConfig) { c.Shapes = nil },
		"MaxShardShare": func(c *LoadGenConfig) {
			c.Shapes = []Shape{{Mode: "x", Weight: 1, Teams: 2, TeamSize: 5, MaxShardShare: 0.1}}
		},
	} {
		c := DefaultLoadGenConfig()
		c.Proposer, c.Worlds, c.Clock = newFakeCoordinator(), ws, clock.NewFake(epoch)
		tweak(&c)
		if _, err := NewLoadGen(c); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming it", field, err)
		}
	}
}

// TestDriverProposalsPassTheDefaultPolicy builds proposals as the driver does and has
// the real policy engine judge them: the ordinary ones must be allowed, the deliberate
// violations denied for their MMR spread.
func TestDriverProposalsPassTheDefaultPolicy(t *testing.T) {
	eng, err := policy.New(policy.Config{EvalTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(epoch)
	ws := testWorlds(t, fake, 2000)
	d := testDriver(t, fake, newFakeCoordinator(ws...), ws, func(c *LoadGenConfig) { c.ViolationShare, c.HotShare = 0.1, 0.1 })
	shards := []*smv1.ShardInfo{{ShardId: "s1", Region: "eu-west"}, {ShardId: "s2", Region: "eu-west"}, {ShardId: "s3", Region: "us-east"}}
	modes, violations, starved := map[string]int{}, 0, 0
	for i := 0; i < 400; i++ {
		j, ok := d.next()
		if !ok {
			starved++
			continue
		}
		d.unclaim(j.players)
		v, err := eng.Evaluate(context.Background(), j.p, shards)
		if err != nil {
			t.Fatal(err)
		}
		modes[j.p.GetMode()]++
		violates := j.violates
		if violates {
			violations++
		}
		if v.GetAllow() == violates {
			t.Fatalf("proposal %d (violation %v) got allow=%v: %v\n%v", i, violates, v.GetAllow(), v.GetDenials(), j.p)
		}
		if violates && v.GetDenials()[0].GetCode() != "MMR_SPREAD" && !hasCode(v, "MMR_SPREAD") {
			t.Errorf("violation denied for %v, want MMR_SPREAD", v.GetDenials())
		}
		if len(j.shards) < 2 {
			t.Errorf("proposal within one shard: %v", j.shards)
		}
	}
	if starved > 4 || modes["duel"] == 0 || modes["5v5"] == 0 || violations < 10 {
		t.Errorf("modes %v, %d violations, %d starved", modes, violations, starved)
	}
}

func hasCode(v *smv1.PolicyVerdict, code string) bool {
	for _, d := range v.GetDenials() {
		if d.GetCode() == code {
			return true
		}
	}
	return false
}

// TestDefaultShapesMatchTheBundle keeps DefaultShapes in step with the default
// bundle's modes.
func TestDefaultShapesMatchTheBundle(t *testing.T) {
	raw, err := os.ReadFile("../policy/bundles/default/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Shardmatch struct {
			Modes map[string]struct {
				Teams         int     `json:"teams"`
				TeamSize      int     `json:"team_size"`
				MaxMMRSpread  int32   `json:"max_mmr_spread"`
				MaxTeamMMRGap int32   `json:"max_team_mmr_gap"`
				MaxLatencyMs  int32   `json:"max_latency_ms"`
				MaxShardShare float64 `json:"max_shard_share"`
				Closed        bool    `json:"closed"`
			} `json:"modes"`
		} `json:"shardmatch"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	for _, s := range DefaultShapes() {
		m, ok := data.Shardmatch.Modes[s.Mode]
		if !ok || m.Closed {
			t.Errorf("mode %q is not open in the default bundle", s.Mode)
			continue
		}
		if m.Teams != s.Teams || m.TeamSize != s.TeamSize || m.MaxMMRSpread != s.MaxMMRSpread ||
			m.MaxTeamMMRGap != s.MaxTeamGap || m.MaxLatencyMs != s.MaxLatencyMs || m.MaxShardShare != s.MaxShardShare {
			t.Errorf("shape %+v differs from the bundle's mode %+v", s, m)
		}
	}
}

// TestDriverTokenBucket drives the driver on a fake clock: one token per tick at
// 100/s, shed while MaxInFlight proposals are stuck.
func TestDriverTokenBucket(t *testing.T) {
	fake := clock.NewFake(epoch)
	ws := testWorlds(t, fake, 500)
	fc := newFakeCoordinator(ws...)
	fc.block = make(chan struct{})
	d := testDriver(t, fake, fc, ws, func(c *LoadGenConfig) { c.Rate, c.MaxInFlight, c.ViolationShare, c.HotShare = 100, 3, 0, 0 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	sent := func() uint64 { s := d.Stats(); return s.Proposed + s.Shed + s.Starved }
	testutil.WaitUntil(t, 5*time.Second, "the first token", func() bool { return sent() == 1 }) // the first token is there at once
	for i := 2; i <= 10; i++ {
		fake.WaitForTimers(1)
		fake.Advance(10 * time.Millisecond)
		testutil.WaitUntil(t, 5*time.Second, fmt.Sprintf("token %d", i), func() bool { return sent() == uint64(i) })
	}
	s := d.Stats()
	if s.Proposed != 3 || s.Shed != 7 || s.InFlight != 3 {
		t.Fatalf("stats %+v, want 3 proposed and 7 shed", s)
	}
	if s.Elapsed != 90*time.Millisecond {
		t.Errorf("elapsed %s, want 90ms", s.Elapsed)
	}
	cancel()
	close(fc.block) // in-flight proposals finish, hosted matches are released at once
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s = d.Stats()
	if s.Committed+s.AbortedTotal() != 3 || s.Released != s.Committed || s.InFlight != 0 || s.Hosting != 0 || s.Latency.Count() != 3 {
		t.Fatalf("after stop: %+v", s)
	}
	if len(d.claimed) != 0 {
		t.Errorf("claims left: %v", d.claimed)
	}
}

// TestDriverRunHostsAndEndsMatches runs the driver on the real clock against the fake
// coordinator: matches are proposed at about the rate, hosted with renewals, released
// and ended at their shards, and the hot players make proposals contend.
func TestDriverRunHostsAndEndsMatches(t *testing.T) {
	clk := clock.NewReal()
	ws := testWorlds(t, clk, 1000)
	fc := newFakeCoordinator(ws...)
	d := testDriver(t, clk, fc, ws, func(c *LoadGenConfig) {
		c.Rate, c.MatchTTL, c.HotShare, c.ViolationShare = 400, 60*time.Millisecond, 0.3, 0.05
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s := d.Stats()
	t.Logf("%s", StatusLine(s, Stats{}, "fake"))
	if s.Proposed < 100 || s.Proposed > 260 {
		t.Errorf("proposed %d in 0.5s at 400/s", s.Proposed)
	}
	if s.Committed == 0 || s.Aborted["PLAYER_LEASED"] == 0 || s.Aborted["POLICY_DENIED"] == 0 {
		t.Errorf("outcomes: committed %d, aborted %v", s.Committed, s.Aborted)
	}
	if s.Committed+s.AbortedTotal()+s.Errors != s.Proposed {
		t.Errorf("proposed %d != committed %d + aborted %d + errors %d", s.Proposed, s.Committed, s.AbortedTotal(), s.Errors)
	}
	if s.Released != s.Committed || s.ReleaseFailed != 0 || s.Renewed == 0 {
		t.Errorf("hosting: %+v", s)
	}
	for _, w := range ws {
		if snap := w.Snapshot(); snap.LiveMatches != 0 || snap.Count[StateInMatch]+snap.Count[StateReserved] != 0 {
			t.Errorf("%s still has matches after the driver stopped: %v", w.ShardID(), snap.Count)
		}
	}
	if s.Latency.Count() != s.Proposed || s.Latency.Quantile(0.99) <= 0 {
		t.Errorf("latency: %d samples, p99 %s", s.Latency.Count(), s.Latency.Quantile(0.99))
	}
}

// TestDriverAbandonsMatches: with AbandonShare 1 no committed match is renewed or
// released (its leases are left to expire), yet every player is freed for reuse.
func TestDriverAbandonsMatches(t *testing.T) {
	clk := clock.NewReal()
	ws := testWorlds(t, clk, 1000)
	fc := newFakeCoordinator(ws...)
	d := testDriver(t, clk, fc, ws, func(c *LoadGenConfig) {
		c.Rate, c.MatchTTL, c.HotShare, c.ViolationShare, c.AbandonShare = 200, 30*time.Millisecond, 0, 0, 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s := d.Stats()
	if s.Committed == 0 || s.Abandoned != s.Committed || s.Released != 0 || s.Renewed != 0 {
		t.Errorf("committed %d, abandoned %d, released %d, renewed %d", s.Committed, s.Abandoned, s.Released, s.Renewed)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.renews) != 0 || len(fc.releases) != 0 {
		t.Errorf("coordinator saw %d renewed and %d released matches", len(fc.renews), len(fc.releases))
	}
	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	if len(d.claimed) != 0 {
		t.Errorf("%d players still claimed after Run", len(d.claimed))
	}
}

// TestDriverReuseAfter: with ReuseAfter, the players of a released match stay claimed
// for that long after the release.
func TestDriverReuseAfter(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	ws := testWorlds(t, clk, 100)
	fc := newFakeCoordinator(ws...)
	d := testDriver(t, clk, fc, ws, func(c *LoadGenConfig) {
		c.MatchTTL, c.MaxRenewals, c.ReuseAfter = 30*time.Millisecond, 0, time.Second
	})
	j, ok := d.next()
	if !ok {
		t.Fatal("no proposal built")
	}
	done := make(chan struct{})
	go func() { defer close(done); d.host(context.Background(), j, "tx-1") }()
	clk.WaitForTimers(1)
	clk.Advance(10 * time.Millisecond) // the match's one period ends: released
	clk.WaitForTimers(1)               // now waiting out ReuseAfter
	d.claimMu.Lock()
	held := d.claimed[j.players[0]]
	d.claimMu.Unlock()
	if held == 0 {
		t.Fatal("players unclaimed right at release despite ReuseAfter")
	}
	clk.Advance(time.Second)
	<-done
	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	if len(d.claimed) != 0 {
		t.Fatalf("players still claimed after ReuseAfter: %v", d.claimed)
	}
}

// TestDriverMatchLength: with RenewEvery and MatchLength, every match is renewed
// every RenewEvery until MatchLength has passed, then released.
func TestDriverMatchLength(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	ws := testWorlds(t, clk, 100)
	fc := newFakeCoordinator(ws...)
	d := testDriver(t, clk, fc, ws, func(c *LoadGenConfig) {
		c.MatchTTL, c.RenewEvery, c.MatchLength = time.Second, 100*time.Millisecond, 350*time.Millisecond
	})
	j, ok := d.next()
	if !ok {
		t.Fatal("no proposal built")
	}
	if j.periods != 4 {
		t.Fatalf("periods %d, want 4 (350ms in 100ms periods)", j.periods)
	}
	done := make(chan struct{})
	go func() { defer close(done); d.host(context.Background(), j, "tx-1") }()
	for i := 0; i < 4; i++ {
		clk.WaitForTimers(1)
		clk.Advance(100 * time.Millisecond)
	}
	<-done
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.renews["tx-1"] != 3 || fc.releases["tx-1"] != 1 {
		t.Fatalf("renews %d, releases %d; want 3 and 1", fc.renews["tx-1"], fc.releases["tx-1"])
	}
}

// TestDriverRampUp: with RampUp the offered rate starts at a tenth of Rate, rises
// linearly and stays at Rate once the ramp is over; without it, it is Rate at once.
func TestDriverRampUp(t *testing.T) {
	d := &LoadGen{cfg: LoadGenConfig{Rate: 500, RampUp: 10 * time.Second}}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 50}, {5 * time.Second, 275}, {10 * time.Second, 500}, {time.Minute, 500}} {
		if got := d.rateAt(tc.at); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("rate at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	d.cfg.RampUp = 0
	if got := d.rateAt(0); got != 500 {
		t.Errorf("without a ramp the rate at 0 is %v, want 500", got)
	}
}
