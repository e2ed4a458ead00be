// Package conformance plays the coordinator against one shard implementation, in any
// language, over a real NATS server, and checks the shard against the rules of
// docs/protocol.md: registration, YES then durable commit, duplicates, an Abort that
// overtakes its Prepare, release on abort, stale fencing tokens, stale coordinator
// terms, players held by an undecided txn, malformed and misaddressed commands, a
// contradictory decision, and (given a way to restart the shard) recovery of an
// in-doubt txn after a restart.
//
// `coordinator conformance --shard ID --players a,b,...` runs it from the command line
// and prints a pass/fail report. Run it on a NATS server of its own, with the harness
// started before the shard: the harness answers the shard's registration and status
// queries as a coordinator would, and a real coordinator on the same subjects would
// answer too. Run it against a shard under test, never one in production: its
// commands carry terms and fencing tokens above any a real coordinator uses, and the
// shard then refuses the real coordinator's Prepares (STALE_TERM) until it restarts.
package conformance
