// Package procs sets how many goroutines the Go runtime runs at once (GOMAXPROCS) for
// shardmatch's binaries, which spend much of their time in blocking fdatasync calls.
//
// A goroutine in a system call keeps its P (the runtime's right to run Go code) until
// the runtime's monitor notices, 20 µs to 10 ms later, and hands the P to another
// thread. With GOMAXPROCS at the core count, two fsyncs in progress on a 2-core
// machine stall every other goroutine (NATS, Raft, the shard's workers) for that long.
// Twice as many Ps as cores keeps Go code running while journals and Raft's log sync.
// Measured with `coordinator bench` (dev topology, 2 cores, policy on, 256 in
// flight): 892 matches/s at GOMAXPROCS=2, 1,394 at 4, 1,447 at 6.
//
// GOMAXPROCS in the environment wins: Apply then changes nothing.
package procs

import "runtime"

// Factor is how many Ps Apply gives per P of the runtime's default (the core count,
// or the container's CPU limit).
const Factor = 2

// Apply raises GOMAXPROCS to Factor times its default unless env("GOMAXPROCS") is set,
// and returns the value in force afterwards.
func Apply(env func(string) string) int {
	cur := runtime.GOMAXPROCS(0)
	if env("GOMAXPROCS") != "" {
		return cur
	}
	runtime.GOMAXPROCS(cur * Factor)
	return cur * Factor
}
