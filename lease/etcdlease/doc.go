// Package etcdlease is a lease.Store on etcd, so that several coordinator groups can
// share one table of player leases.
package etcdlease
