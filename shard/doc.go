// Package shard is what a game's shard server embeds to take part in shardmatch
// matches: it answers the coordinator's Prepare, Commit and Abort for the shard's
// players, on the game's behalf, safely by default.
//
// The happy path is one call. The game implements twophase.ShardHandler (reserve,
// commit, release its own players) and starts the shard on a NATS connection:
//
//	s, err := shard.Start(ctx, shard.Config{ID: "eu-1", Conn: nc, Game: game, JournalPath: "eu-1.journal"})
//	if err != nil {
//		return err
//	}
//	defer s.Stop(context.Background())
//
// Start does the rest, in this order:
//   - opens the durable journal (twophase.OpenJournal: one append-only file with group
//     commit, one fdatasync per batch) where votes and outcomes are recorded before
//     they are sent, and the highest fencing token seen per player. It serves reads
//     from memory, about 200 bytes per record kept: a shard deciding N transactions a
//     second holds N × TombstoneRetention records (at 100/s and the 24 h default,
//     1.6 GiB). Pass Journal: twophase.OpenBoltJournal(...) to keep them on disk
//     instead, at about half the write throughput;
//   - builds the twophase.Participant, which makes every command idempotent by txid,
//     refuses stale fencing tokens and stale coordinator terms, and hands the game's
//     Commit only players whose tokens are current;
//   - registers the shard with the coordinator (retrying until a leader answers);
//   - serves the shard's durable JetStream consumer;
//   - settles transactions left in doubt by a crash, by asking the coordinator for
//     their outcome;
//   - compacts the journal (decided records older than TombstoneRetention) every
//     CompactInterval.
//
// The journal's fdatasync blocks the thread that calls it, and Go hands that
// thread's P to other goroutines only after a delay. A shard server that commits many
// matches a second runs faster with GOMAXPROCS at twice its cores; the shardmatch
// binaries set that themselves (internal/procs).
//
// What the game must do: Prepare reserves all the players or none, and returns an
// error (not a NO) when it cannot tell, so the Prepare is retried; Commit and Abort
// are safe to repeat after a crash. docs/protocol.md describes the wire protocol for
// shards written in other languages.
//
// This package and everything it imports link no NATS server, Raft or OPA: a test in
// internal/doctest checks the dependency list, and another builds a module outside
// this repository against it.
package shard
