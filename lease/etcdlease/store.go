package etcdlease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardmatch/shardmatch/lease"
)

// ErrUnavailable means etcd could not be reached or could not decide in time (no
// quorum, no leader, the store's OpTimeout passed). It wraps the cause. A read that
// fails with it changed nothing; a write's effect is unknown, as for any timed-out
// write, but never partial: an Acquire granted all of its players or none, and a
// caller that aborts the txid (Release) cleans up either way.
var ErrUnavailable = errors.New("etcdlease: etcd unavailable")

// Rho is the clock rate error ρ the store tolerates in the etcd leader's clock, which
// measures every lease. A lease is granted ⌈ttl⌉ whole seconds of the leader's time,
// counted from after the call was sent, so a leader clock running fast by up to ρ
// still leaves it ttl/(1+ρ) ≥ ttl·(1−ρ) of real time (I7).
const Rho = 0.01

// RevokeScan is how often etcd's lessor looks for expired leases (a fixed 500ms in
// etcd's lessor). An expired lease's keys are deleted by the revoke proposal the next
// scan sends, so this is part of the expiry slack.
const RevokeScan = 500 * time.Millisecond

// ExpirySlack is how long after ttl·(1+ρ) an unrenewed ACTIVE lease of this store may
// still be seen, in a healthy cluster without a leader change: the rounding of ttl up
// to whole seconds, one lessor scan, and commitLatency for the revoke proposal to
// commit and apply. A leader change adds the new leader's extension (a full TTL plus
// the election timeout from the moment it takes over), which is allowed: bounded
// expiry counts from the new leader taking over.
func ExpirySlack(ttl, commitLatency time.Duration) time.Duration {
	return time.Duration(ttlSeconds(ttl))*time.Second - ttl + RevokeScan + commitLatency
}

// Options configures a Store. Client is required; zero fields take the defaults.
type Options struct {
	// Client is the etcd client the store uses. The store does not close it.
	Client *clientv3.Client
	// Prefix is the key prefix of this lease table; stores that share players must
	// share it. Default "/shardmatch/leases". A trailing "/" is dropped.
	Prefix string
	// SessionTTL is the TTL of the store's owner session, the etcd lease its RESERVED
	// leases are attached to and that it keeps alive. If this process dies, its
	// reservations are reclaimed SessionTTL (rounded up to whole seconds) plus
	// RevokeScan and a commit after its last keepalive. Default 10s; at least MinTTL.
	SessionTTL time.Duration
	// MinTTL is etcd's minimum lease TTL, which etcd silently applies to shorter
	// requests: 1.5 × its election timeout, rounded up to whole seconds (2s for
	// etcd's default 1s election timeout). Acquire refuses a shorter ttl with
	// lease.ErrInvalid rather than let etcd lengthen it. Default 2s.
	MinTTL time.Duration
	// OpTimeout bounds each etcd round trip, so an unreachable etcd gives
	// ErrUnavailable after at most OpTimeout per round trip instead of blocking until
	// the caller's ctx ends. Default 3s.
	OpTimeout time.Duration
	// MaxPlayers is the most players one Acquire may name. The granting Txn holds one
	// compare and one put per player plus one for the txid key, and etcd refuses a
	// Txn of more than its max-txn-ops (default 128) operations per branch. Default 127.
	MaxPlayers int
	// Logger receives session losses and best-effort cleanup failures. Nil discards.
	Logger *slog.Logger

	// faults makes deliberately broken stores for the conformance suite's own tests.
	faults faults
}

// faults are the deliberate bugs export_test.go can switch on.
type faults struct {
	noCreateCompare bool // Acquire grants without checking the players are free
	reservedOnTTL   bool // RESERVED leases expire with the match TTL
	noRenew         bool // Renew acknowledges without renewing
}

// Store is a lease.Store on etcd. Every key of a grant lives under Prefix and is
// attached to one etcd lease: the store's owner session while RESERVED, a per-match
// lease with the match TTL once ACTIVE. It is safe for concurrent use; many stores, in
// many processes, may share one Prefix.
type Store struct {
	cli        *clientv3.Client
	k          keys
	log        *slog.Logger
	sessionTTL int64 // seconds
	minTTL     time.Duration
	opTimeout  time.Duration
	maxPlayers int
	faults     faults

	closed    atomic.Bool
	closeOnce sync.Once

	mu   sync.Mutex
	sess *session // nil until first needed or after it was lost
}

// session is one owner-session etcd lease and the goroutine draining its keepalives.
type session struct {
	id     clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{} // closed when the keepalive stream ended
}

func (ss *session) alive() bool {
	select {
	case <-ss.done:
		return false
	default:
		return true
	}
}

var _ lease.Store = (*Store)(nil)

// New returns a Store on opts.Client. It grants the owner session at once, so a
// misconfigured or unreachable etcd is reported here (ErrUnavailable), not at the
// first Acquire.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, fmt.Errorf("%w: Options.Client is nil", lease.ErrInvalid)
	}
	if opts.Prefix == "" {
		opts.Prefix = "/shardmatch/leases"
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 10 * time.Second
	}
	if opts.MinTTL == 0 {
		opts.MinTTL = 2 * time.Second
	}
	if opts.OpTimeout == 0 {
		opts.OpTimeout = 3 * time.Second
	}
	if opts.MaxPlayers == 0 {
		opts.MaxPlayers = 127
	}
	switch {
	case opts.MinTTL < 0:
		return nil, fmt.Errorf("%w: Options.MinTTL (%v) must be positive", lease.ErrInvalid, opts.MinTTL)
	case opts.SessionTTL < opts.MinTTL:
		return nil, fmt.Errorf("%w: Options.SessionTTL (%v) must be at least MinTTL (%v)", lease.ErrInvalid, opts.SessionTTL, opts.MinTTL)
	case opts.OpTimeout < 0:
		return nil, fmt.Errorf("%w: Options.OpTimeout (%v) must be positive", lease.ErrInvalid, opts.OpTimeout)
	case opts.MaxPlayers < 0:
		return nil, fmt.Errorf("%w: Options.MaxPlayers (%d) must be positive", lease.ErrInvalid, opts.MaxPlayers)
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cli:        opts.Client,
		k:          keys{prefix: strings.TrimSuffix(opts.Prefix, "/")},
		log:        lg.With("component", "etcdlease", "prefix", opts.Prefix),
		sessionTTL: ttlSeconds(opts.SessionTTL),
		minTTL:     opts.MinTTL,
		opTimeout:  opts.OpTimeout,
		maxPlayers: opts.MaxPlayers,
		faults:     opts.faults,
	}
	if _, err := s.session(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the owner session's keepalive and revokes it, which ends this store's
// RESERVED leases at once (a coordinator that shuts down has nothing left to decide).
// ACTIVE leases are untouched: they live out their TTL. Afterwards every method
// returns lease.ErrClosed. Close is idempotent; it returns the revoke's error, if any,
// after at most OpTimeout.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.mu.Lock()
		ss := s.sess
		s.sess = nil
		s.mu.Unlock()
		if ss == nil {
			return
		}
		ss.cancel()
		<-ss.done
		ctx, cancel := context.WithTimeout(context.Background(), s.opTimeout)
		defer cancel()
		if _, rerr := s.cli.Revoke(ctx, ss.id); rerr != nil && !isLeaseNotFound(rerr) {
			err = fmt.Errorf("etcdlease: revoke owner session: %w", rerr)
		}
	})
	return err
}

// session returns the live owner session, granting a new one if there is none or the
// last one was lost (its keepalive stream ended: etcd unreachable for longer than the
// session TTL, or the lease revoked). Reservations on a lost session are gone.
func (s *Store) session(ctx context.Context) (clientv3.LeaseID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, lease.ErrClosed
	}
	if s.sess != nil && s.sess.alive() {
		return s.sess.id, nil
	}
	if s.sess != nil {
		s.log.Warn("owner session lost; its reservations are reclaimed by etcd", "lease", int64(s.sess.id))
		s.sess.cancel()
		s.sess = nil
	}
	var g *clientv3.LeaseGrantResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		g, err = s.cli.Grant(ctx, s.sessionTTL)
		return err
	})
	if err != nil {
		return 0, s.classify(ctx, "grant owner session", err)
	}
	if g.TTL != s.sessionTTL {
		s.revokeQuietly(g.ID)
		return 0, fmt.Errorf("%w: etcd granted the owner session %ds, not %ds: is MinTTL below etcd's minimum lease TTL?",
			lease.ErrInvalid, g.TTL, s.sessionTTL)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		s.revokeQuietly(g.ID)
		return 0, s.classify(ctx, "keep owner session alive", err)
	}
	ss := &session{id: g.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ss.done)
		for range ch { // the client sends a keepalive every TTL/3; drain the acks
		}
	}()
	s.sess = ss
	return ss.id, nil
}

// dropSession forgets the session id if it is still the current one, after etcd said
// the lease does not exist.
func (s *Store) dropSession(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess != nil && s.sess.id == id {
		s.log.Warn("owner session expired in etcd; its reservations are reclaimed", "lease", int64(id))
		s.sess.cancel()
		s.sess = nil
	}
}

// call runs one etcd round trip under ctx bounded by OpTimeout.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	return fn(ctx)
}

// begin checks the store is open and ctx still live.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return lease.ErrClosed
	}
	return nil
}

// revokeQuietly revokes an etcd lease that holds no keys of ours (or whose keys may
// go), best effort: a lease left behind expires on its own.
func (s *Store) revokeQuietly(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opTimeout)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !isLeaseNotFound(err) {
		s.log.Info("revoke failed; the lease will expire on its own", "lease", int64(id), "err", err)
	}
}

// getTxn reads txid's index key: its record and the etcd metadata (ModRevision for
// compare-and-swap, CreateRevision = token, Lease). ErrNotFound if absent.
func (s *Store) getTxn(ctx context.Context, op, txid string) (record, *kv, error) {
	if txid == "" {
		return record{}, nil, fmt.Errorf("%w: empty txid", lease.ErrNotFound)
	}
	key := s.k.txn(txid)
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, key)
		return err
	})
	if err != nil {
		return record{}, nil, s.classify(ctx, op, err)
	}
	if len(resp.Kvs) == 0 {
		return record{}, nil, fmt.Errorf("%w: txid %q", lease.ErrNotFound, txid)
	}
	m := resp.Kvs[0]
	r, err := decodeRecord(key, m.Value)
	if err != nil {
		return record{}, nil, err
	}
	return r, &kv{mod: m.ModRevision, create: m.CreateRevision, lease: clientv3.LeaseID(m.Lease)}, nil
}

// kv is the etcd metadata of a key that a Txn compares against.
type kv struct {
	mod, create int64
	lease       clientv3.LeaseID
}

// grantIntact are the compares that hold while txid's grant, read as r and m, is
// untouched: its index key not rewritten, and each player key still the one the
// grant created.
func (s *Store) grantIntact(txid string, r record, m *kv) []clientv3.Cmp {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.txn(txid)), "=", m.mod)}
	for _, p := range r.Players {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.k.player(p)), "=", m.create))
	}
	return cmps
}

// casRetries bounds how often Activate and Release re-read after losing a
// compare-and-swap to a concurrent call on the same txid.
const casRetries = 4
