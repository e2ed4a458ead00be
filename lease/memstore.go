package lease

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

// MemStoreConfig configures a MemStore. Zero fields take the defaults of
// DefaultMemStoreConfig, so MemStoreConfig{Clock: fake} is a complete config.
type MemStoreConfig struct {
	// Clock measures expiry, on its monotonic face only (Mono and tickers); the wall
	// clock is never read. Default: clock.NewReal().
	Clock clock.Clock
	// Rho is the tolerated clock rate error ρ. An ACTIVE lease is expired ttl·(1+ρ) of
	// this store's monotonic time after its last Activate or Renew, so even a clock
	// running fast by ρ never takes it before ttl·(1−ρ) of real time. It must be in
	// [0, 1); 0 means the default 0.01. There is deliberately no way to turn the
	// margin off.
	Rho float64
	// ScanInterval is how often the background goroutine expires due leases. A lease
	// is gone within ScanInterval (plus scheduling delay) of its deadline. Default 100ms.
	ScanInterval time.Duration
}

// DefaultMemStoreConfig returns the defaults: the real clock, ρ = 1%, a 100ms scan.
func DefaultMemStoreConfig() MemStoreConfig {
	return MemStoreConfig{Clock: clock.NewReal(), Rho: 0.01, ScanInterval: 100 * time.Millisecond}
}

// withDefaults fills zero fields and validates the result; errors name the field.
func (c MemStoreConfig) withDefaults() (MemStoreConfig, error) {
	d := DefaultMemStoreConfig()
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Rho == 0 {
		c.Rho = d.Rho
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = d.ScanInterval
	}
	if math.IsNaN(c.Rho) || c.Rho < 0 || c.Rho >= 1 {
		return c, fmt.Errorf("%w: MemStoreConfig.Rho (%v) must be in [0, 1)", ErrInvalid, c.Rho)
	}
	if c.ScanInterval < 0 {
		return c, fmt.Errorf("%w: MemStoreConfig.ScanInterval (%v) must be positive", ErrInvalid, c.ScanInterval)
	}
	return c, nil
}

// MemStore is an in-process Store: a Table behind a mutex, fencing tokens from the
// table's own counter, and expiry measured on an injected clock's monotonic time. It is
// real code that ships (for `coordinator dev`, single-process deployments and tests of
// code that needs a Store), not a mock; it passes the leasetest conformance suite.
//
// It stands in for the coordinator's leader: it measures each ACTIVE match from its
// Activate or last Renew and expires it with Table.Expire and the renew sequence it
// measured from, exactly as the leader proposes Expire to the FSM.
type MemStore struct {
	clk  clock.Clock
	rho  float64
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu        sync.Mutex
	table     *Table
	deadlines map[string]deadline // ACTIVE txid -> when it falls due
	closed    bool
}

// deadline is when an ACTIVE match falls due on the monotonic clock, and the renew
// sequence the measurement started from.
type deadline struct {
	at  time.Duration
	seq uint64
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store and starts its expiry goroutine; Close stops it.
func NewMemStore(cfg MemStoreConfig) (*MemStore, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &MemStore{
		clk:       cfg.Clock,
		rho:       cfg.Rho,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		table:     NewTable(),
		deadlines: make(map[string]deadline),
	}
	tk := cfg.Clock.NewTicker(cfg.ScanInterval)
	go s.run(tk)
	return s, nil
}

func (s *MemStore) run(tk clock.Ticker) {
	defer close(s.done)
	defer tk.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tk.C():
			s.ExpireDue()
		}
	}
}

// Close stops the expiry goroutine and waits for it to exit. Afterwards every method
// returns ErrClosed. Close is idempotent and always returns nil.
func (s *MemStore) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.done
	})
	return nil
}

// lock takes the mutex and checks the store is usable; on error the mutex is released.
func (s *MemStore) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Acquire implements Store.Acquire; the token is one above any the store has issued.
func (s *MemStore) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]Lease, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return s.table.Grant(txid, players, s.table.MaxToken()+1, ttl)
}

// Activate implements Store.Activate and starts measuring the match's TTL.
func (s *MemStore) Activate(ctx context.Context, txid string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.table.Activate(txid); err != nil {
		return err
	}
	s.deadlines[txid] = deadline{at: s.dueAt(s.table.byTxn.Get(txid).ttl), seq: 0}
	return nil
}

// Renew implements Store.Renew and restarts the match's TTL measurement.
func (s *MemStore) Renew(ctx context.Context, txid string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	seq, err := s.table.Renew(txid)
	if err != nil {
		return err
	}
	s.deadlines[txid] = deadline{at: s.dueAt(s.table.byTxn.Get(txid).ttl), seq: seq}
	return nil
}

// Release implements Store.Release.
func (s *MemStore) Release(ctx context.Context, txid string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, err := s.table.Release(txid); err != nil {
		return err
	}
	delete(s.deadlines, txid)
	return nil
}

// Get implements Store.Get.
func (s *MemStore) Get(ctx context.Context, player string) (Lease, error) {
	if err := s.lock(ctx); err != nil {
		return Lease{}, err
	}
	defer s.mu.Unlock()
	l, ok := s.table.Get(player)
	if !ok {
		return Lease{}, fmt.Errorf("%w: player %q", ErrNotFound, player)
	}
	return l, nil
}

// ExpireDue expires every ACTIVE match whose deadline has passed on the monotonic
// clock and returns how many it expired. The background goroutine calls it every
// ScanInterval; tests call it right after advancing a fake clock, so that expiry is
// deterministic instead of racing the goroutine. It is a no-op on a closed store.
func (s *MemStore) ExpireDue() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	now := s.clk.Mono()
	n := 0
	for txid, d := range s.deadlines {
		if now < d.at {
			continue
		}
		// The seq always matches here (Renew updates the deadline under the same
		// mutex), but going through it keeps this the leader's protocol exactly.
		if _, ok, err := s.table.Expire(txid, d.seq); err == nil && ok {
			n++
		}
		delete(s.deadlines, txid)
	}
	return n
}

// dueAt returns the monotonic instant ttl·(1+ρ) from now, rounded up and saturating,
// so rounding and overflow can only ever make a lease live longer.
func (s *MemStore) dueAt(ttl time.Duration) time.Duration {
	const maxDur = time.Duration(math.MaxInt64)
	margin := math.Ceil(float64(ttl) * s.rho) // ttl + ttl·ρ, not ttl·(1+ρ): exact for round numbers
	if margin >= float64(maxDur-ttl) {
		return maxDur
	}
	now, d := s.clk.Mono(), ttl+time.Duration(margin)
	if now > maxDur-d {
		return maxDur
	}
	return now + d
}
