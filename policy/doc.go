// Package policy decides whether a proposed match may be formed, by evaluating
// an OPA (Rego) policy bundle on the proposal.
//
// The coordinator's leader calls [Engine.Evaluate] on every proposal before it
// reserves a single player. The engine evaluates the query data.shardmatch.match
// of the loaded bundle, which answers {"allow": bool, "deny": [{code, message,
// players}]}, and turns it into a [smv1.PolicyVerdict] that names the bundle
// revision that produced it. The leader stores the verdict in the transaction's
// Raft entry, so a replica never evaluates policy itself and a reload can never
// make replicas diverge.
//
// The query is compiled once per bundle version and evaluated by OPA's
// evaluator directly, with one read transaction per version and pooled,
// allocation-free caches: an evaluation pays for the rules it runs and little
// else. The input document carries the proposal, the mode's queue config from
// the bundle's data, the shards' metadata, and facts: aggregates of the
// proposal (MMR spread, fewest and most players on a team, players per shard,
// ...) computed in Go, from which each rule of the default bundle decides an
// allowed match with one comparison; the players themselves are converted for
// OPA only if a rule reads them, to name the culprits of a violation.
// docs/policy.md has the numbers.
//
// A reload, by [Engine.Reload] or by [Engine.Watch] on a file change or SIGHUP,
// compiles the new bundle off to the side and swaps it in atomically:
// evaluations in flight finish on the version they started with, and a bundle
// that fails to load, compile or answer a smoke query never replaces the one
// in use (the failure is logged, counted in [Stats] and returned).
//
// The package fails closed. An evaluation error, a timeout or a malformed answer
// yields a DENY verdict with code POLICY_ERROR together with an error wrapping
// [ErrEvaluation]; malformed input yields a DENY with code INVALID_INPUT and an
// error wrapping [ErrInvalidInput]. Evaluate never admits a proposal it could not
// judge.
//
// The default bundle, embedded in the binary, lives in bundles/default; its rules,
// the input document and the data knobs are described in docs/policy.md.
// [RunTest] and [RunEval] implement `coordinator policy test` and
// `coordinator policy eval`; package policy/cases holds the table of allow/deny
// cases shared by this package's tests and the coordinator's end-to-end tests.
//
// This package must never import the coordinator, the lease table or the
// two-phase protocol, and policies must stay pure functions of their input and
// data: network built-ins (http.send, net.lookup_ip_addr) are refused at compile
// time.
package policy
