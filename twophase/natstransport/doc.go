// Package natstransport carries the two-phase commit protocol over NATS JetStream: the
// coordinator side is a twophase.Transport (Coordinator), the shard side serves a
// twophase.CommandHandler, normally a *twophase.Participant, from its durable consumer
// (Serve).
//
//	leader ── Prepare/Commit/Abort ──▶ stream SM_CMD, subject <p>.v1.shard.<shard>.cmd
//	                                   Nats-Msg-Id = <txid>/<phase>/<shard>/<epoch>, traceparent, Sm-Term
//	                                   [Sm-Signer, Sm-Sig: with CoordinatorConfig.Signer]
//	          durable pull consumer shard-<shard> (explicit ack, MaxAckPending > 1)
//	shard  ── Vote ──▶ core <p>.v1.coord.vote.<shard>
//	       ── Ack  ──▶ core <p>.v1.coord.ack.<shard>
//
// Delivery semantics. A command is stored once per resend epoch (ResendEpoch, default
// 1 s): driver resends inside one epoch carry the same Nats-Msg-Id and JetStream
// acknowledges them as duplicates without storing them again. That is safe because the
// stream holds the first copy and the durable consumer redelivers it until the shard
// acks it, and the shard acks only after it has handled the command and published its
// reply. Replies travel on core NATS and can be lost (a reconnect, a slow consumer); the
// driver's next resend in a later epoch is stored again, so the shard handles it (as a
// duplicate) and repeats its reply: a lost vote is recovered before the prepare
// deadline, and a lost ack within a second or two. Every handler is idempotent by txid
// and the coordinator's Raft log, not the stream, is the truth.
//
// Tracing. Send is a producer span, shardmatch.<phase> <shard>, whose traceparent the
// command carries; the shard's handling of it is a consumer span,
// shardmatch.shard.<phase>, with the vote or the acked outcome, and the reply carries
// that span's traceparent. Both are no-ops until the program installs a provider.
//
// Ordering. A shard handles commands of different txids in parallel (Workers, default
// 64) and the commands of one txid one at a time in stream order: a txid always hashes
// to the same worker. The consumer never needs MaxAckPending = 1.
//
// Batches. A shard registered with ShardInfo.command_batches (the Go SDK's shards are)
// may get several commands in one message: a ShardCommandBatch with the header
// Sm-Batch, and no Nats-Msg-Id. Coordinator.SetBatches says which shards take them. The
// coordinator's sender for such a shard publishes what has gathered, waits for that
// message's PubAck (at most 10 ms) and publishes what gathered meanwhile, so at low load
// each command goes alone and at once, and under load one message, one delivery, one
// ack and one ShardReplyBatch serve up to 256 commands. The shard runs a batch's
// commands on the workers of their txids like lone ones, publishes their replies as one
// ShardReplyBatch on its vote subject, then acks the message; if any command failed for
// now it naks the whole message, and the redelivery runs every command again
// (idempotent by txid). The coordinator checks each reply of a batch as if it came
// alone.
//
// Signatures. With CoordinatorConfig.Signer every command is signed (package cmdsig:
// Ed25519 over a domain prefix, the subject and the payload); with
// ParticipantConfig.Verifier a shard refuses, before decoding, every command not
// signed by a key it trusts. Without them nothing changes.
//
// What this package must never do:
//   - decide anything: it moves commands and replies, the driver and the Participant
//     decide;
//   - hand the coordinator a reply whose shard_id differs from the shard named by the
//     subject it came on: NATS permissions on that subject are what prove who voted;
//   - apply, or pass to a handler, a command it cannot decode or that names another
//     shard, or, with a Verifier, one whose signature does not verify: such messages
//     are logged, counted and terminated, never retried forever;
//   - ack a command before its handler returned and its reply was published;
//   - crash on anything that arrives on the wire.
package natstransport
