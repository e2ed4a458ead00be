package etcdlease

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardmatch/shardmatch/lease"
)

// Adopt moves txid's RESERVED grant onto this store's owner session, keeping its
// fencing token, and returns its leases. It is how a new coordinator leader takes over
// the reservations of the transactions its predecessor began: they sit on the old
// leader's session, which etcd revokes when that process is gone, and after Adopt they
// live as long as this store does. Adopting a grant this store already holds changes
// nothing and succeeds, so a retry is safe.
//
// ErrNotFound if txid holds nothing (never granted, released, or reclaimed with its
// session: the transaction must then abort); lease.ErrWrongState if its leases are
// ACTIVE (they live on the match's own etcd lease, which no session owns). One read
// and one Txn that checks the grant is untouched.
func (s *Store) Adopt(ctx context.Context, txid string) ([]lease.Lease, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("adopt txid %q", txid)
	for attempt := 0; attempt < casRetries; attempt++ {
		r, m, err := s.getTxn(ctx, op, txid)
		if err != nil {
			return nil, err
		}
		if r.State != lease.Reserved {
			return nil, fmt.Errorf("%w: txid %q is %v", lease.ErrWrongState, txid, r.State)
		}
		owner, err := s.session(ctx)
		if err != nil {
			return nil, err
		}
		leases := make([]lease.Lease, len(r.Players))
		for i, p := range r.Players {
			leases[i] = lease.Lease{Player: p, TxID: txid, Token: uint64(m.create), State: lease.Reserved, TTL: time.Duration(r.TTL)}
		}
		if m.lease == owner {
			return leases, nil
		}
		ops := s.grantOps(txid, r, owner)
		var resp *clientv3.TxnResponse
		err = s.call(ctx, func(ctx context.Context) (err error) {
			resp, err = s.cli.Txn(ctx).If(s.grantIntact(txid, r, m)...).Then(ops...).Commit()
			return err
		})
		if isLeaseNotFound(err) && attempt == 0 {
			s.dropSession(owner) // our session lapsed unnoticed; nothing was written
			continue
		}
		if err != nil {
			return nil, s.classify(ctx, op, err)
		}
		if resp.Succeeded {
			return leases, nil
		}
		// Lost a race on txid (released, reclaimed or adopted meanwhile): re-read.
	}
	return nil, fmt.Errorf("%w: %s: still contended after %d attempts", ErrUnavailable, op, casRetries)
}
