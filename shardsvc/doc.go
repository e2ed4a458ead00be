// Package shardsvc is the reference shard server: what a game's shard would run next
// to the participant SDK, with simulated players instead of a game.
//
// It has three parts:
//
//   - [World] is one shard's player base with a believable life: players log in and
//     out, go into dungeons, trade, transfer between shards, and come back idle; a few
//     decline matches. It is the shard's own truth and implements
//     [twophase.ShardHandler], so a [twophase.Participant] can put it behind the
//     two-phase protocol.
//   - [LoadGen] is a load generator: it proposes cross-shard matches that the default
//     policy bundle accepts, at a target rate with bounded concurrency, hosts the
//     committed ones (renews, then releases them), and measures what happened.
//   - [Audit] asks every shard and every coordinator node what they hold at the end of
//     a run and counts broken atomicity, double-booked players and transactions left
//     in doubt.
//
// `coordinator dev` runs all three in one process against an in-process coordinator
// cluster; cmd/shardsvc will run a World behind the NATS transport.
//
// The package talks to the coordinator only through the small [Proposer] interface
// declared here, so it never imports the coordinator. Time comes from an injected
// [clock.Clock] and randomness from seeds, so a test drives a World or a LoadGen on a
// fake clock. A World must never decide anything a coordinator decides: it only
// answers for its own players, and it applies every commit it is given (fenced by the
// token), because the coordinator's logged decision is authoritative.
package shardsvc
