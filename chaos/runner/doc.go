// Package runner runs a chaos scenario against the real binaries: every coordinator,
// every shard server and the NATS server run as processes in network namespaces of
// their own (chaos/netns), a recorded workload drives matches through them
// (chaos/workload), the scenario's faults are injected on schedule (nftables rules,
// signals, the binaries' fault-injection endpoints), and at the end the run's history
// (client calls, every shard's effects, every node's lease log, everyone's final
// state) is checked against the invariants I1–I7 (chaos/history) and written up as a
// report (chaos/report).
//
// The runner is the only observer: its own traffic (admin APIs, the workload's NATS
// connection) is never partitioned or dropped, so what it records is what the system
// really did. Every time in the history is on one reference clock: the machine's real
// clock, which every process shares and no fault touches (clock faults move only a
// process's injected clock).
//
// Run needs root (network namespaces and nftables); without it, it fails with
// netns.ErrNotRoot before changing anything.
package runner
