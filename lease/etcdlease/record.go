package etcdlease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shardmatch/shardmatch/lease"
)

// recordVersion is the version of the value encoding; a store refuses values of
// another version rather than guess at them.
const recordVersion = 1

// record is the value of both kinds of key. A player key carries TxID; a txid key
// carries Players (sorted). The fencing token is not in the value: it is the
// revision of the granting Txn, which is not known until that Txn commits, and etcd
// keeps it as the key's CreateRevision (an update such as Activate keeps it).
type record struct {
	V       int         `json:"v"`
	TxID    string      `json:"tx,omitempty"`
	Players []string    `json:"p,omitempty"`
	State   lease.State `json:"st"`
	TTL     int64       `json:"ttl"` // nanoseconds, as the caller asked (not rounded)
}

func (r record) encode() string {
	b, err := json.Marshal(r)
	if err != nil { // a struct of strings and integers always marshals
		panic(err)
	}
	return string(b)
}

func decodeRecord(key string, val []byte) (record, error) {
	var r record
	if err := json.Unmarshal(val, &r); err != nil {
		return r, fmt.Errorf("etcdlease: key %q: undecodable value: %w", key, err)
	}
	if r.V != recordVersion || (r.State != lease.Reserved && r.State != lease.Active) || r.TTL <= 0 {
		return r, fmt.Errorf("etcdlease: key %q: unsupported value %q", key, val)
	}
	return r, nil
}

// keys builds the store's etcd keys under one prefix.
type keys struct{ prefix string }

func (k keys) player(id string) string { return k.prefix + "/players/" + id }
func (k keys) txn(txid string) string  { return k.prefix + "/txns/" + txid }

// ttlSeconds is ttl in whole seconds, rounded up: etcd grants leases in seconds, and
// rounding up can only make a lease live longer (I7).
func ttlSeconds(ttl time.Duration) int64 {
	return int64(math.Ceil(ttl.Seconds()))
}

// validateAcquire checks Acquire's arguments as lease.Table.Grant does (same order,
// same messages), plus the limits etcd adds, and returns the players sorted.
func (s *Store) validateAcquire(txid string, players []string, ttl time.Duration) ([]string, error) {
	switch {
	case txid == "":
		return nil, fmt.Errorf("%w: empty txid", lease.ErrInvalid)
	case len(players) == 0:
		return nil, fmt.Errorf("%w: txid %q: no players", lease.ErrInvalid, txid)
	case ttl <= 0:
		return nil, fmt.Errorf("%w: txid %q: ttl %v must be positive", lease.ErrInvalid, txid, ttl)
	case ttl < s.minTTL:
		return nil, fmt.Errorf("%w: txid %q: ttl %v is below the store's MinTTL %v (etcd would lengthen it)",
			lease.ErrInvalid, txid, ttl, s.minTTL)
	case ttlSeconds(ttl) > maxLeaseTTL:
		return nil, fmt.Errorf("%w: txid %q: ttl %v is above etcd's maximum lease TTL", lease.ErrInvalid, txid, ttl)
	case len(players) > s.maxPlayers:
		return nil, fmt.Errorf("%w: txid %q: %d players, more than MaxPlayers %d (etcd's max-txn-ops less one)",
			lease.ErrInvalid, txid, len(players), s.maxPlayers)
	}
	sorted := slices.Clone(players)
	slices.Sort(sorted)
	for i, p := range sorted {
		if p == "" {
			return nil, fmt.Errorf("%w: txid %q: empty player id", lease.ErrInvalid, txid)
		}
		if i > 0 && sorted[i-1] == p {
			return nil, fmt.Errorf("%w: txid %q: duplicate player %q", lease.ErrInvalid, txid, p)
		}
	}
	return sorted, nil
}

// maxLeaseTTL is etcd's largest lease TTL in seconds (lease.MaxLeaseTTL on the server).
const maxLeaseTTL = 9_000_000_000

// classify turns an etcd client error into the store's error for op. The caller's
// own ctx ending wins (returned wrapped, so errors.Is(err, context.Canceled) holds);
// a closed store gives lease.ErrClosed; a transport or quorum failure, or the store's
// own OpTimeout, gives ErrUnavailable wrapping the cause; anything else is returned
// wrapped as it is.
func (s *Store) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("etcdlease: %s: %w", op, cerr)
	}
	if s.closed.Load() {
		return fmt.Errorf("etcdlease: %s: %w", op, lease.ErrClosed)
	}
	if transient(err) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("etcdlease: %s: %w", op, err)
}

// transient reports whether err means etcd could not be reached or could not decide
// (no leader, no quorum, timed out), as opposed to refusing the request.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		clientv3.IsConnCanceled(err) {
		return true
	}
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.ResourceExhausted:
		return true
	}
	// Some server errors travel as Unknown with a recognisable description. "raft
	// proposal dropped" is raft refusing a proposal while leadership moves (a
	// transfer in progress, or a candidate with no leader yet): etcd does not map it
	// to a gRPC code, and the proposal never entered the log, so nothing changed.
	msg := err.Error()
	for _, m := range []string{"no leader", "leader changed", "timed out", "connection lost", "server stopped", "proposal dropped"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// isLeaseNotFound reports whether err says an etcd lease does not exist (expired,
// revoked, or never granted).
func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) ||
		(err != nil && strings.Contains(err.Error(), rpctypes.ErrLeaseNotFound.Error()))
}
