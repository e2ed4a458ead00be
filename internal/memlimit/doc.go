// Package memlimit sets the Go runtime's soft memory limit from the container's memory
// limit. Go sizes its heap by GOGC alone: a node holding a large FSM (a million leases
// is about 250 MiB of heap) lets garbage grow to twice its live heap before collecting,
// and a container limit below that is an OOM kill, not a slower GC. With a soft limit at
// a fraction of the cgroup's hard one, the collector works harder as the limit nears
// instead.
//
// GOMEMLIMIT, when set, wins: Apply then changes nothing.
package memlimit
