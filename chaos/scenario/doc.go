// Package scenario is the chaos scenario format: a YAML file that names a topology
// (coordinators, shards, NATS), a workload (rate, match size, contention, lease TTLs),
// a fault schedule (partition, bridge, loss, latency, clock skew and drift, kill,
// pause, duplication, reordering, NATS restart) and the checks a run is judged by.
//
// Parse decodes strictly (an unknown field is an error, so a typo never silently
// weakens an experiment), fills in defaults and validates; Validate reports every
// problem at once in a *ValidationError that names each field. Selectors in faults
// may be dynamic ("leader", "minority", ...); Validate checks them against every
// possible assignment of the coordinators' roles, so that, for instance, two
// partition groups can never name the same node whoever leads.
//
// The shipped scenarios live in chaos/scenarios/*.yaml (embedded by that package);
// Builtin, BuiltinNames and Lookup serve them. Those whose Unsafe is set are the
// checker-bites runs: they start a deliberately broken coordinator and Expect the
// checkers to report it.
//
// The package is pure: it starts no process, opens no connection and never reads a
// clock. The runner (chaos/runner) resolves dynamic selectors and injects the faults;
// chaos/chaosmesh renders the same scenarios as Chaos Mesh manifests.
package scenario
