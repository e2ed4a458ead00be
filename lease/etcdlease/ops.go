package etcdlease

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardmatch/shardmatch/lease"
)

// Acquire implements lease.Store.Acquire in one etcd round trip: a single Txn whose
// compares say the txid key and every player key do not exist, whose success branch
// puts them all (attached to the owner session), and whose failure branch reads them
// all so the *lease.LeasedError can name exactly the busy players. The fencing token
// is the Txn's revision. Arguments are validated before etcd is touched.
func (s *Store) Acquire(ctx context.Context, txid string, players []string, ttl time.Duration) ([]lease.Lease, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	sorted, err := s.validateAcquire(txid, players, ttl)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		owner, err := s.session(ctx)
		if err != nil {
			return nil, err
		}
		if s.faults.reservedOnTTL {
			if owner, err = s.grantTTL(ctx, ttl); err != nil {
				return nil, err
			}
		}
		ls, err := s.acquireTxn(ctx, owner, txid, sorted, ttl)
		if isLeaseNotFound(err) {
			if attempt == 0 {
				// The session expired in etcd before this process noticed (it was cut
				// off for longer than the session TTL). Nothing was written; start a
				// new one.
				s.dropSession(owner)
				continue
			}
			return nil, s.classify(ctx, fmt.Sprintf("acquire txid %q", txid), err)
		}
		return ls, err
	}
}

// acquireTxn is Acquire's one Txn, its RESERVED keys attached to etcd lease owner.
func (s *Store) acquireTxn(ctx context.Context, owner clientv3.LeaseID, txid string, sorted []string, ttl time.Duration) ([]lease.Lease, error) {
	txnKey := s.k.txn(txid)
	cmps := make([]clientv3.Cmp, 0, len(sorted)+1)
	puts := make([]clientv3.Op, 0, len(sorted)+1)
	gets := make([]clientv3.Op, 0, len(sorted)+1)
	cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(txnKey), "=", 0))
	puts = append(puts, clientv3.OpPut(txnKey,
		record{V: recordVersion, Players: sorted, State: lease.Reserved, TTL: int64(ttl)}.encode(), clientv3.WithLease(owner)))
	pval := func(tx string) string {
		return record{V: recordVersion, TxID: tx, State: lease.Reserved, TTL: int64(ttl)}.encode()
	}
	for _, p := range sorted {
		key := s.k.player(p)
		if !s.faults.noCreateCompare {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		}
		puts = append(puts, clientv3.OpPut(key, pval(txid), clientv3.WithLease(owner)))
		gets = append(gets, clientv3.OpGet(key))
	}
	gets = append(gets, clientv3.OpGet(txnKey))

	var resp *clientv3.TxnResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.cli.Txn(ctx).If(cmps...).Then(puts...).Else(gets...).Commit()
		return err
	})
	if isLeaseNotFound(err) {
		return nil, err
	}
	if err != nil {
		return nil, s.classify(ctx, fmt.Sprintf("acquire txid %q", txid), err)
	}
	if resp.Succeeded {
		tok := uint64(resp.Header.Revision)
		ls := make([]lease.Lease, len(sorted))
		for i, p := range sorted {
			ls[i] = lease.Lease{Player: p, TxID: txid, Token: tok, State: lease.Reserved, TTL: ttl}
		}
		return ls, nil
	}
	// The failure branch read every key in the same revision as the compares.
	rs := resp.Responses
	if len(rs[len(rs)-1].GetResponseRange().Kvs) > 0 {
		return nil, fmt.Errorf("%w: txid %q already holds leases", lease.ErrInvalid, txid)
	}
	holders := make(map[string]string)
	for i, p := range sorted {
		kvs := rs[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		r, err := decodeRecord(s.k.player(p), kvs[0].Value)
		if err != nil {
			return nil, err
		}
		holders[p] = r.TxID
	}
	if len(holders) == 0 { // the compares failed yet nothing exists: cannot happen
		return nil, fmt.Errorf("etcdlease: acquire txid %q: Txn refused but no key exists", txid)
	}
	return nil, &lease.LeasedError{Holders: holders}
}

// grantTTL grants an etcd lease of ttl rounded up to whole seconds and checks etcd
// did not lengthen it.
func (s *Store) grantTTL(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	secs := ttlSeconds(ttl)
	var g *clientv3.LeaseGrantResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		g, err = s.cli.Grant(ctx, secs)
		return err
	})
	if err != nil {
		return 0, s.classify(ctx, "grant match lease", err)
	}
	if g.TTL != secs {
		s.revokeQuietly(g.ID)
		return 0, fmt.Errorf("%w: etcd granted %ds for a %v ttl: MinTTL is below etcd's minimum lease TTL",
			lease.ErrInvalid, g.TTL, ttl)
	}
	return g.ID, nil
}

// Activate implements lease.Store.Activate: it grants a fresh etcd lease of the match
// TTL (rounded up to whole seconds) and, in one Txn that checks the grant is intact,
// moves the txid key and every player key to it as ACTIVE. It then renews that lease
// once, so the TTL runs from just before Activate returns rather than from the grant
// two round trips earlier. Three round trips after a read.
func (s *Store) Activate(ctx context.Context, txid string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	op := fmt.Sprintf("activate txid %q", txid)
	for range casRetries {
		r, m, err := s.getTxn(ctx, op, txid)
		if err != nil {
			return err
		}
		if r.State != lease.Reserved {
			return fmt.Errorf("%w: txid %q is %v", lease.ErrWrongState, txid, r.State)
		}
		id, err := s.grantTTL(ctx, time.Duration(r.TTL))
		if err != nil {
			return err
		}
		r.State = lease.Active
		ops := s.grantOps(txid, r, id)
		var resp *clientv3.TxnResponse
		err = s.call(ctx, func(ctx context.Context) (err error) {
			resp, err = s.cli.Txn(ctx).If(s.grantIntact(txid, r, m)...).Then(ops...).Commit()
			return err
		})
		if err != nil {
			s.revokeQuietly(id)
			if isLeaseNotFound(err) {
				continue // the new lease ran out before the Txn: grant another
			}
			return s.classify(ctx, op, err)
		}
		if !resp.Succeeded {
			s.revokeQuietly(id) // lost a race on txid: re-read to learn how
			continue
		}
		if err := s.call(ctx, func(ctx context.Context) error {
			_, err := s.cli.KeepAliveOnce(ctx, id)
			return err
		}); err != nil {
			// The activation is done; only the restart of its clock failed, so the
			// lease runs from its grant, which is after the call began (I7 holds).
			s.log.Info("renew after activate failed", "txid", txid, "err", err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s: still contended after %d attempts", ErrUnavailable, op, casRetries)
}

// grantOps are the puts that write txid's grant r (its index key and every player
// key, in r's state) onto etcd lease id. A put keeps a key's CreateRevision, so the
// grant's token does not change.
func (s *Store) grantOps(txid string, r record, id clientv3.LeaseID) []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpPut(s.k.txn(txid), r.encode(), clientv3.WithLease(id))}
	for _, p := range r.Players {
		pr := record{V: recordVersion, TxID: txid, State: r.State, TTL: r.TTL}
		ops = append(ops, clientv3.OpPut(s.k.player(p), pr.encode(), clientv3.WithLease(id)))
	}
	return ops
}

// Renew implements lease.Store.Renew: a read of the txid key, then one KeepAliveOnce on
// its match lease. ErrNotFound if the txid or its etcd lease is gone (expired).
func (s *Store) Renew(ctx context.Context, txid string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	op := fmt.Sprintf("renew txid %q", txid)
	r, m, err := s.getTxn(ctx, op, txid)
	if err != nil {
		return err
	}
	if r.State != lease.Active {
		return fmt.Errorf("%w: txid %q is %v", lease.ErrWrongState, txid, r.State)
	}
	if s.faults.noRenew {
		return nil
	}
	err = s.call(ctx, func(ctx context.Context) error {
		_, err := s.cli.KeepAliveOnce(ctx, m.lease)
		return err
	})
	if isLeaseNotFound(err) {
		return fmt.Errorf("%w: txid %q: its lease expired", lease.ErrNotFound, txid)
	}
	return s.classify(ctx, op, err)
}

// Release implements lease.Store.Release: one Txn that deletes the txid key and every
// player key if the grant is intact, then (for an ACTIVE match) a best-effort revoke
// of its now keyless etcd lease.
func (s *Store) Release(ctx context.Context, txid string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	op := fmt.Sprintf("release txid %q", txid)
	for range casRetries {
		r, m, err := s.getTxn(ctx, op, txid)
		if err != nil {
			return err
		}
		ops := []clientv3.Op{clientv3.OpDelete(s.k.txn(txid))}
		for _, p := range r.Players {
			ops = append(ops, clientv3.OpDelete(s.k.player(p)))
		}
		var resp *clientv3.TxnResponse
		err = s.call(ctx, func(ctx context.Context) (err error) {
			resp, err = s.cli.Txn(ctx).If(s.grantIntact(txid, r, m)...).Then(ops...).Commit()
			return err
		})
		if err != nil {
			return s.classify(ctx, op, err)
		}
		if !resp.Succeeded {
			continue
		}
		// A RESERVED grant sits on some store's owner session, shared with its other
		// reservations: never revoke that.
		if r.State == lease.Active && m.lease != 0 {
			s.revokeQuietly(m.lease)
		}
		return nil
	}
	return fmt.Errorf("%w: %s: still contended after %d attempts", ErrUnavailable, op, casRetries)
}

// Get implements lease.Store.Get with one read. The token is the player key's
// CreateRevision. RenewSeq is always 0: a renew is an etcd keepalive, not a write, so
// the store does not count them.
func (s *Store) Get(ctx context.Context, player string) (lease.Lease, error) {
	if err := s.begin(ctx); err != nil {
		return lease.Lease{}, err
	}
	if player == "" {
		return lease.Lease{}, fmt.Errorf("%w: empty player id", lease.ErrNotFound)
	}
	key := s.k.player(player)
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, key)
		return err
	})
	if err != nil {
		return lease.Lease{}, s.classify(ctx, fmt.Sprintf("get player %q", player), err)
	}
	if len(resp.Kvs) == 0 {
		return lease.Lease{}, fmt.Errorf("%w: player %q", lease.ErrNotFound, player)
	}
	m := resp.Kvs[0]
	r, err := decodeRecord(key, m.Value)
	if err != nil {
		return lease.Lease{}, err
	}
	return lease.Lease{Player: player, TxID: r.TxID, Token: uint64(m.CreateRevision), State: r.State,
		TTL: time.Duration(r.TTL)}, nil
}
