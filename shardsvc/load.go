package shardsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Proposer is the coordinator as a matchmaker and a match host see it.
type Proposer interface {
	// Propose runs p to its decision. An error means the outcome is unknown or the
	// proposal was invalid; a Decision is final.
	Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error)
	// Renew restarts the TTL of the leases of the committed match txid.
	Renew(ctx context.Context, txid string) error
	// Release ends the committed match txid and frees its players.
	Release(ctx context.Context, txid string) error
}

// LoadGenConfig configures a LoadGen. Start from DefaultLoadGenConfig.
type LoadGenConfig struct {
	// Proposer is the coordinator. Required.
	Proposer Proposer
	// Worlds are the shards whose players are matched; at least two. Required.
	Worlds []*World
	// Clock paces the proposals and the match hosts and times the latencies. Required.
	Clock clock.Clock
	// Seed drives every choice the driver makes.
	Seed int64
	// Rate is the target number of proposals per second.
	Rate float64
	// RampUp, if positive, is how long the driver takes to reach Rate: it starts at
	// a tenth of it and rises linearly, so a deployment that has just started (cold
	// caches, a Raft log and JetStream streams still empty) is not met by its full
	// load at once.
	RampUp time.Duration
	// MaxInFlight bounds the proposals awaiting their decision; while it is reached,
	// the proposals the rate calls for are shed (counted, not queued).
	MaxInFlight int
	// HotShare is the share of proposals built around one of the shards' regulars
	// (World.Regulars), a small set of players picked often, so that proposals
	// contend for them and abort with PLAYER_LEASED.
	HotShare float64
	// ViolationShare is the share of proposals built to break the policy (an MMR
	// spread too wide), so that POLICY_DENIED shows up.
	ViolationShare float64
	// MatchTTL is the proposals' match_ttl. Committed matches are hosted: renewed
	// every RenewEvery (default MatchTTL/3), between 0 and MaxRenewals times, then
	// released; or, with MatchLength, renewed until MatchLength has passed.
	MatchTTL    time.Duration
	MaxRenewals int
	RenewEvery  time.Duration
	MatchLength time.Duration
	// AbandonShare is the share of committed matches whose host neither renews nor
	// releases them, as a crashed game server would: their leases must expire at the
	// coordinator. The driver reuses their players after twice MatchTTL.
	AbandonShare float64
	// ReuseAfter keeps the players of a released match out of new proposals this
	// long. Set it to about MatchTTL when the Worlds are stand-ins for shards in other
	// processes: such a shard learns that a match ended only when its TTL runs out,
	// and until then refuses its players as IN_MATCH.
	ReuseAfter time.Duration
	// Shapes are the match formats proposed, by weight.
	Shapes []Shape
	// ProposeTimeout bounds one Propose, Renew or Release call.
	ProposeTimeout time.Duration
	// IDPrefix starts every proposal id. Empty: derived from the seed and the wall
	// clock, so runs on the same coordinator data never reuse an id.
	IDPrefix string
	// Logger receives failed calls at debug level. Nil discards.
	Logger *slog.Logger
}

// DefaultLoadGenConfig returns a config with every tunable set; callers fill in the
// Proposer, the Worlds and the Clock.
func DefaultLoadGenConfig() LoadGenConfig {
	return LoadGenConfig{Rate: 200, MaxInFlight: 64, HotShare: 0.05, ViolationShare: 0.02, MatchTTL: 5 * time.Second,
		MaxRenewals: 2, Shapes: DefaultShapes(), ProposeTimeout: 10 * time.Second}
}

// Validate reports the first missing or inconsistent field by name.
func (c *LoadGenConfig) Validate() error {
	switch {
	case c.Proposer == nil:
		return errors.New("shardsvc: LoadGenConfig.Proposer is nil")
	case len(c.Worlds) < 2:
		return fmt.Errorf("shardsvc: LoadGenConfig.Worlds has %d worlds, need >= 2 for cross-shard matches", len(c.Worlds))
	case c.Clock == nil:
		return errors.New("shardsvc: LoadGenConfig.Clock is nil")
	case !(c.Rate > 0):
		return fmt.Errorf("shardsvc: LoadGenConfig.Rate (%v) must be > 0", c.Rate)
	case c.MaxInFlight < 1:
		return fmt.Errorf("shardsvc: LoadGenConfig.MaxInFlight (%d) must be >= 1", c.MaxInFlight)
	case !(c.HotShare >= 0 && c.HotShare <= 1):
		return fmt.Errorf("shardsvc: LoadGenConfig.HotShare (%v) must be in [0, 1]", c.HotShare)
	case !(c.ViolationShare >= 0 && c.ViolationShare <= 1):
		return fmt.Errorf("shardsvc: LoadGenConfig.ViolationShare (%v) must be in [0, 1]", c.ViolationShare)
	case !(c.AbandonShare >= 0 && c.AbandonShare <= 1):
		return fmt.Errorf("shardsvc: LoadGenConfig.AbandonShare (%v) must be in [0, 1]", c.AbandonShare)
	case c.RenewEvery < 0 || c.MatchLength < 0:
		return fmt.Errorf("shardsvc: LoadGenConfig.RenewEvery (%s) and MatchLength (%s) must be >= 0", c.RenewEvery, c.MatchLength)
	case c.ReuseAfter < 0:
		return fmt.Errorf("shardsvc: LoadGenConfig.ReuseAfter (%s) must be >= 0", c.ReuseAfter)
	case c.MatchTTL < 3*time.Millisecond:
		return fmt.Errorf("shardsvc: LoadGenConfig.MatchTTL (%s) must be >= 3ms", c.MatchTTL)
	case c.MaxRenewals < 0:
		return fmt.Errorf("shardsvc: LoadGenConfig.MaxRenewals (%d) must be >= 0", c.MaxRenewals)
	case len(c.Shapes) == 0:
		return errors.New("shardsvc: LoadGenConfig.Shapes is empty")
	case c.ProposeTimeout <= 0:
		return fmt.Errorf("shardsvc: LoadGenConfig.ProposeTimeout (%s) must be > 0", c.ProposeTimeout)
	}
	seen := map[string]bool{}
	for i, w := range c.Worlds {
		if w == nil || seen[w.ShardID()] {
			return fmt.Errorf("shardsvc: LoadGenConfig.Worlds[%d] is nil or a repeated shard", i)
		}
		seen[w.ShardID()] = true
	}
	var weight float64
	for _, s := range c.Shapes {
		if err := s.validate(len(c.Worlds)); err != nil {
			return err
		}
		weight += s.Weight
	}
	if weight <= 0 {
		return errors.New("shardsvc: LoadGenConfig.Shapes have no weight")
	}
	return nil
}

// LoadGen proposes cross-shard matches at a target rate, hosts the committed ones, and
// measures every call. Build it with NewLoadGen, run it once with Run.
//
// Lock order: claimMu, then a World's lock (PickIdle's accept reads claimed); mu is a
// leaf.
type LoadGen struct {
	cfg    LoadGenConfig
	log    *slog.Logger
	rng    *rand.Rand // Run's goroutine only
	prefix string
	seq    uint64
	worlds map[string]*World

	claimMu sync.Mutex
	claimed map[string]int // player → proposals in flight and matches hosted that hold it

	started  atomic.Bool
	inFlight atomic.Int64
	hosting  atomic.Int64

	mu      sync.Mutex
	start   time.Duration // mono, when Run started
	stop    time.Duration // mono, when Run stopped proposing
	running bool
	stats   Stats
	hist    Histogram
}

// NewLoadGen validates cfg and returns a LoadGen ready to Run.
func NewLoadGen(cfg LoadGenConfig) (*LoadGen, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	d := &LoadGen{cfg: cfg, log: lg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x4c4f4144)),
		prefix: cfg.IDPrefix, worlds: map[string]*World{}, claimed: map[string]int{},
		stats: Stats{Aborted: map[string]uint64{}, Rejections: map[string]uint64{}}}
	if d.prefix == "" {
		d.prefix = fmt.Sprintf("load-%x", mix64(uint64(cfg.Seed)^uint64(cfg.Clock.Now().UnixNano()))&0xffffffff)
	}
	for _, w := range cfg.Worlds {
		d.worlds[w.ShardID()] = w
	}
	return d, nil
}

// Run proposes until ctx ends, then stops proposing, waits for the proposals in
// flight to be decided, releases every match it hosts (ending them at their shards)
// and returns. It may be called once.
func (d *LoadGen) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("shardsvc: LoadGen.Run called twice")
	}
	clk := d.cfg.Clock
	d.mu.Lock()
	d.start, d.running = clk.Mono(), true
	d.mu.Unlock()
	hostCtx, stopHosts := context.WithCancel(context.Background())
	defer stopHosts()
	var proposals, hosts sync.WaitGroup

	// A token bucket on the injected clock: tokens accrue at Rate, up to a tenth of a
	// second's worth, and each one is a proposal, or is shed if MaxInFlight are out.
	every := min(max(time.Duration(float64(time.Second)/d.cfg.Rate), time.Millisecond), 20*time.Millisecond)
	tick := clk.NewTicker(every)
	burst := max(1, d.cfg.Rate/10)
	tokens, last := 1.0, clk.Mono()
loop:
	for {
		for ; tokens >= 1-1e-9; tokens-- { // tolerate float rounding of rate × elapsed
			if d.inFlight.Load() >= int64(d.cfg.MaxInFlight) {
				d.count(func(s *Stats) { s.Shed++ })
				continue
			}
			j, ok := d.next()
			if !ok {
				d.count(func(s *Stats) { s.Starved++ })
				continue
			}
			d.inFlight.Add(1)
			d.count(func(s *Stats) { s.Proposed++ })
			proposals.Add(1)
			go func() {
				defer proposals.Done()
				d.propose(hostCtx, &hosts, j)
			}()
		}
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C():
		}
		now := clk.Mono()
		tokens = min(burst, tokens+d.rateAt(now-d.start)*(now-last).Seconds())
		last = now
	}
	tick.Stop()
	d.mu.Lock()
	d.stop, d.running = clk.Mono(), false
	d.mu.Unlock()
	proposals.Wait()
	stopHosts()
	hosts.Wait()
	return nil
}

// rateAt is the offered rate at elapsed since Run started: Rate, or on the way
// to it while RampUp lasts.
func (d *LoadGen) rateAt(elapsed time.Duration) float64 {
	if r := d.cfg.RampUp; r > 0 && elapsed < r {
		return d.cfg.Rate * (0.1 + 0.9*elapsed.Seconds()/r.Seconds())
	}
	return d.cfg.Rate
}

// job is one proposal and what hosting it needs.
type job struct {
	p       *smv1.Proposal
	players []string
	shards  []string
	periods int // host for periods × renewEvery(): periods-1 renewals, then release
	// abandon: the host never renews nor releases; the leases must expire.
	abandon bool
	// violates marks a proposal built to break the policy.
	violates bool
}

func (d *LoadGen) propose(hostCtx context.Context, hosts *sync.WaitGroup, j job) {
	clk := d.cfg.Clock
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ProposeTimeout)
	t0 := clk.Mono()
	dec, err := d.cfg.Proposer.Propose(ctx, j.p)
	took := clk.Mono() - t0
	cancel()
	d.mu.Lock()
	d.hist.Record(took)
	switch {
	case err != nil:
		d.stats.Errors++
		d.stats.LastError = err.Error()
	case dec.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED:
		d.stats.Committed++
	default:
		d.stats.Aborted[ReasonName(dec.GetReason())]++
		if dec.GetReason() == smv1.Reason_REASON_SHARD_REJECTED {
			for _, pd := range dec.GetPlayers() {
				if pd.GetCode() != "" {
					d.stats.Rejections[pd.GetCode()]++
				}
			}
		}
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Debug("propose failed", "proposal_id", j.p.GetProposalId(), "err", err)
	}
	if err == nil && dec.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
		hosts.Add(1)
		d.hosting.Add(1)
		d.inFlight.Add(-1)
		go func() {
			defer hosts.Done()
			defer d.hosting.Add(-1)
			d.host(hostCtx, j, dec.GetTxid())
		}()
		return
	}
	d.inFlight.Add(-1)
	d.unclaim(j.players)
}

// host plays the committed match txid: renews it every renewEvery() (at the coordinator
// and at its shards), then releases it and ends it at its shards. When hostCtx ends
// (the driver stops) it releases at once.
func (d *LoadGen) host(hostCtx context.Context, j job, txid string) {
	defer d.unclaim(j.players)
	clk := d.cfg.Clock
	if j.abandon {
		// Not even at the driver's stop: the leases are left to expire. The players
		// stay claimed until they surely have, so they are not proposed in vain.
		_ = clock.Sleep(hostCtx, clk, 2*d.cfg.MatchTTL)
		d.count(func(s *Stats) { s.Abandoned++ })
		for _, sh := range j.shards {
			d.worlds[sh].EndMatch(txid)
		}
		return
	}
	for i := 1; i <= j.periods; i++ {
		if clock.Sleep(hostCtx, clk, d.renewEvery()) != nil || i == j.periods {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ProposeTimeout)
		err := d.cfg.Proposer.Renew(ctx, txid)
		cancel()
		if err != nil { // the lease may be gone: end the match now
			d.count(func(s *Stats) { s.RenewFailed++; s.LastError = err.Error() })
			d.log.Debug("renew failed", "txid", txid, "err", err)
			break
		}
		d.count(func(s *Stats) { s.Renewed++ })
		for _, sh := range j.shards {
			d.worlds[sh].RenewMatch(txid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ProposeTimeout)
	err := d.cfg.Proposer.Release(ctx, txid)
	cancel()
	if err != nil {
		d.count(func(s *Stats) { s.ReleaseFailed++; s.LastError = err.Error() })
		d.log.Debug("release failed", "txid", txid, "err", err)
	} else {
		d.count(func(s *Stats) { s.Released++ })
	}
	for _, sh := range j.shards {
		d.worlds[sh].EndMatch(txid)
	}
	if d.cfg.ReuseAfter > 0 {
		_ = clock.Sleep(hostCtx, clk, d.cfg.ReuseAfter)
	}
}

// renewEvery is the hosts' renewal period.
func (d *LoadGen) renewEvery() time.Duration {
	if d.cfg.RenewEvery > 0 {
		return d.cfg.RenewEvery
	}
	return d.cfg.MatchTTL / 3
}

// periods is how many renewal periods a new match is hosted for.
func (d *LoadGen) periods() int {
	if d.cfg.MatchLength > 0 {
		every := d.renewEvery()
		return max(1, int((d.cfg.MatchLength+every-1)/every))
	}
	return 1 + d.rng.IntN(d.cfg.MaxRenewals+1)
}

func (d *LoadGen) count(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

func (d *LoadGen) unclaim(players []string) {
	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	for _, id := range players {
		if d.claimed[id]--; d.claimed[id] <= 0 {
			delete(d.claimed, id)
		}
	}
}

// ReasonName is a decision reason without its enum prefix: "PLAYER_LEASED".
func ReasonName(r smv1.Reason) string {
	return strings.TrimPrefix(r.String(), "REASON_")
}

// Stats are a LoadGen's counters.
type Stats struct {
	// Elapsed is how long the driver has been proposing: from Run's start to now, or
	// to when it stopped proposing.
	Elapsed time.Duration
	// Proposed counts proposals sent; each ends Committed, in Aborted, or in Errors.
	Proposed  uint64
	Committed uint64
	// Aborted counts aborted proposals by reason ("PLAYER_LEASED", ...).
	Aborted map[string]uint64
	// Rejections counts, in SHARD_REJECTED decisions, the players' rejection codes.
	Rejections map[string]uint64
	// Errors counts proposals whose outcome is unknown (or that were invalid).
	Errors uint64
	// Shed counts proposals not sent because MaxInFlight were pending.
	Shed uint64
	// Starved counts proposals not sent because too few suitable players were idle.
	Starved uint64
	// Renewed, RenewFailed, Released and ReleaseFailed count the match hosts' calls.
	Renewed, RenewFailed, Released, ReleaseFailed uint64
	// Abandoned counts committed matches left to expire (LoadGenConfig.AbandonShare).
	Abandoned uint64
	// InFlight are the proposals awaiting a decision; Hosting the matches being played.
	InFlight, Hosting int
	// Latency is the distribution of Propose call durations, errors included.
	Latency *Histogram
	// LastError is the last failed call's error, for display.
	LastError string
}

// AbortedTotal sums Aborted.
func (s Stats) AbortedTotal() uint64 {
	var n uint64
	for _, v := range s.Aborted {
		n += v
	}
	return n
}

// Stats returns a snapshot of the counters.
func (d *LoadGen) Stats() Stats {
	now := d.cfg.Clock.Mono()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Aborted, s.Rejections = maps.Clone(s.Aborted), maps.Clone(s.Rejections)
	h := d.hist
	s.Latency = &h
	s.InFlight, s.Hosting = int(d.inFlight.Load()), int(d.hosting.Load())
	switch {
	case d.running:
		s.Elapsed = now - d.start
	case d.started.Load():
		s.Elapsed = d.stop - d.start
	}
	return s
}
