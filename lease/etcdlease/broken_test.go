package etcdlease_test

import (
	"slices"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/etcdlease"
	"github.com/shardmatch/shardmatch/lease/leasetest"
)

// Each deliberately broken etcd store must fail every check listed for it, as
// leasetest's own tests prove for broken MemStores: the suite passing TestConformance
// means something only if it fails these.
func TestConformanceCatchesBrokenStores(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	for _, b := range []struct {
		name   string
		broken func(etcdlease.Options) etcdlease.Options
		catch  []string
	}{
		{"grants without the CreateRevision compare", etcdlease.WithoutCreateCompare,
			[]string{"AcquireAllOrNothing", "ConcurrentAcquireOneWinner", "ConcurrentChurnExclusive"}},
		{"puts reservations on the match TTL", etcdlease.WithReservedOnMatchTTL,
			[]string{"ReservedNeverExpires"}},
		{"acknowledges renews without renewing", etcdlease.WithoutRenew,
			[]string{"RenewKeepsLeaseAlive"}},
	} {
		t.Run(b.name, func(t *testing.T) {
			h := harness(srv, func(t *testing.T, c *clientv3.Client) lease.Store {
				return newStore(t, c, b.broken(etcdlease.Options{}))
			})
			for _, c := range leasetest.Checks() {
				if !slices.Contains(b.catch, c.Name) {
					continue
				}
				t.Run(c.Name, func(t *testing.T) {
					if err := c.Fn(t, h); err == nil {
						t.Fatalf("check %s passed an etcd store that %s", c.Name, b.name)
					} else {
						t.Logf("caught: %v", err)
					}
				})
			}
		})
	}
}
