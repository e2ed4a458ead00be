package leasetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shardmatch/shardmatch/lease"
)

// Sizes of the concurrency check, small enough for a real backend.
const (
	raceRounds     = 20 // rounds of the one-winner race
	raceGoroutines = 8
	churnPlayers   = 8
	churnIters     = 60 // per goroutine
	churnSeed      = 0x5eed
)

// CheckConcurrentAcquireOneWinner checks invariant I2 under a burst: when many
// goroutines acquire the same players at once, exactly one wins and every loser gets a
// *LeasedError naming the winner. Run it with -race.
func CheckConcurrentAcquireOneWinner(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		for r := range raceRounds {
			if err := e.oneWinner(r); err != nil {
				e.failf("round %d: %v", r, err)
			}
		}
	})
}

// CheckConcurrentChurnExclusive checks invariants I2 and I4 under sustained
// contention: goroutines churning through overlapping player sets never hold a player
// at the same time, never lose a lease they hold, and each new holder of a player gets
// a higher token than the last. Run it with -race.
func CheckConcurrentChurnExclusive(t *testing.T, h Harness) error {
	return run(t, h, func(e *env) {
		if err := e.churn(); err != nil {
			e.failf("%v", err)
		}
	})
}

// oneWinner starts raceGoroutines acquires of the same three players together and
// checks that exactly one succeeds and every other one names it as the holder.
func (e *env) oneWinner(round int) error {
	players := []string{fmt.Sprintf("w%d-0", round), fmt.Sprintf("w%d-1", round), fmt.Sprintf("w%d-2", round)}
	type result struct {
		ls  []lease.Lease
		err error
	}
	results := make([]result, raceGoroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range raceGoroutines {
		wg.Go(func() {
			<-start
			ls, err := e.s.Acquire(e.ctx, txName("w", round, g), players, e.h.TTL)
			results[g] = result{ls, err}
		})
	}
	close(start)
	wg.Wait()

	winner := ""
	for g, r := range results {
		if r.err != nil {
			continue
		}
		if winner != "" {
			return fmt.Errorf("both %s and %s acquired %q", winner, txName("w", round, g), players)
		}
		winner = txName("w", round, g)
		if err := checkGranted(r.ls, winner, players, e.h.TTL); err != nil {
			return err
		}
	}
	if winner == "" {
		return fmt.Errorf("no goroutine acquired %q: first error %v", players, results[0].err)
	}
	want := map[string]string{players[0]: winner, players[1]: winner, players[2]: winner}
	for g, r := range results {
		var le *lease.LeasedError
		if r.err != nil && (!errors.As(r.err, &le) || !maps.Equal(le.Holders, want)) {
			return fmt.Errorf("loser %s got %v, want a *LeasedError with holders %v", txName("w", round, g), r.err, want)
		}
	}
	if err := e.s.Release(e.ctx, winner); err != nil {
		return fmt.Errorf("winner %s: Release: %w", winner, err)
	}
	return nil
}

// churn runs raceGoroutines goroutines acquiring, activating, renewing and releasing
// random overlapping subsets of a small player pool. Each marks its players in a shared
// tracker only after Acquire returned and unmarks them before calling Release, so its
// marks lie inside the time it really held them: two marks on one player at once mean
// the store granted a held player.
func (e *env) churn() error {
	tr := &tracker{holder: map[string]string{}, last: map[string]uint64{}}
	var wins, losses atomic.Int64
	errs := make([]error, raceGoroutines)
	var wg sync.WaitGroup
	for g := range raceGoroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(churnSeed, uint64(g)))
			for i := range churnIters {
				txid := txName("c", g, i)
				won, err := e.churnOnce(tr, rng, txid, i%2 == 0)
				if err != nil {
					errs[g] = fmt.Errorf("%s: %w", txid, err)
					return
				}
				if won {
					wins.Add(1)
				} else {
					losses.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Without both outcomes the run exercised no contention and proved nothing.
	if wins.Load() == 0 || losses.Load() == 0 {
		return fmt.Errorf("%d acquires won and %d lost: no contention was exercised", wins.Load(), losses.Load())
	}
	return nil
}

// churnOnce is one goroutine's one attempt; it reports whether it won the players.
func (e *env) churnOnce(tr *tracker, rng *rand.Rand, txid string, activate bool) (bool, error) {
	perm := rng.Perm(churnPlayers)[:2+rng.IntN(3)]
	players := make([]string, len(perm))
	for i, n := range perm {
		players[i] = fmt.Sprintf("c%d", n)
	}
	ls, err := e.s.Acquire(e.ctx, txid, players, e.h.TTL)
	var le *lease.LeasedError
	if errors.As(err, &le) {
		if len(le.Holders) == 0 {
			return false, errors.New("LeasedError names no player")
		}
		for p, holder := range le.Holders {
			if holder == txid || !slices.Contains(players, p) {
				return false, fmt.Errorf("LeasedError names %q held by %q; requested %q", p, holder, players)
			}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("Acquire(%q): %w", players, err)
	}
	if err := checkGranted(ls, txid, players, e.h.TTL); err != nil {
		return false, err
	}
	if err := tr.take(txid, ls); err != nil {
		return false, err
	}
	// Hold the players across a few yields, so that other goroutines try for them
	// while they are held even when a fast store and few CPUs would otherwise let
	// each goroutine run its whole loop alone.
	for range 3 {
		runtime.Gosched()
	}
	if activate {
		if err := e.s.Activate(e.ctx, txid); err != nil {
			return false, fmt.Errorf("Activate: %w", err)
		}
		if err := e.s.Renew(e.ctx, txid); err != nil {
			return false, fmt.Errorf("Renew: %w", err)
		}
	}
	tr.drop(players)
	if err := e.s.Release(e.ctx, txid); err != nil {
		return false, fmt.Errorf("Release: %w (the lease was taken from its holder)", err)
	}
	return true, nil
}

// tracker is the test's own view of who holds what, guarded by one mutex.
type tracker struct {
	mu     sync.Mutex
	holder map[string]string // player -> txid that believes it holds it
	last   map[string]uint64 // player -> highest token seen
}

func (tr *tracker) take(txid string, ls []lease.Lease) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, l := range ls {
		if h, ok := tr.holder[l.Player]; ok {
			return fmt.Errorf("granted %q while %s still held it", l.Player, h)
		}
		if l.Token <= tr.last[l.Player] {
			return fmt.Errorf("granted %q token %d after token %d", l.Player, l.Token, tr.last[l.Player])
		}
	}
	for _, l := range ls {
		tr.holder[l.Player] = txid
		tr.last[l.Player] = l.Token
	}
	return nil
}

func (tr *tracker) drop(players []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range players {
		delete(tr.holder, p)
	}
}

func txName(prefix string, a, b int) string { return fmt.Sprintf("%s%d/%d", prefix, a, b) }
