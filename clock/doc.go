// Package clock is the one way shardmatch code reads time.
//
// Every package that needs time takes a Clock from its constructor. A Clock has two
// faces: Now, the wall clock, which is for display and never for safety decisions; and
// Mono plus timers, a monotonic clock that never jumps, which is what timeouts and lease
// expiry are measured on.
//
// Three implementations ship: Real (the machine's clocks), Fake (moved by hand, for
// deterministic tests) and Skewed (another clock seen through a wall-clock offset and a
// rate error, changeable while running, for chaos experiments: libfaketime cannot reach
// Go's vDSO clock reads, so this is the only way to skew a Go process).
//
// This package must never import anything of shardmatch's: it is leaf plumbing.
package clock
