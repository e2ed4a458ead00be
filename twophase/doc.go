// Package twophase is the shardmatch commit protocol: the transaction state machine,
// the coordinator-side driver that runs prepare / decide / deliver for one transaction,
// and the participant SDK that a shard server embeds to answer Prepare, Commit and Abort.
//
// The protocol (docs/protocol.md):
//
//	coordinator                        shard
//	  Begin in the log (leases RESERVED)
//	  Prepare ─────────────────────────▶ check own truth, journal PREPARED, vote
//	        ◀───────────────────────────  Vote YES | NO
//	  Decide in the log (COMMIT iff every shard voted YES before the deadline)
//	  Commit | Abort ──────────────────▶ apply idempotently, journal, ack
//	        ◀───────────────────────────  Ack
//	  Acked in the log; DONE when every shard acked
//
// Rules this package must never break:
//   - A Commit is only ever sent for a decision that is already in the replicated log.
//   - A participant that voted YES never aborts on its own; it waits or asks for the
//     outcome.
//   - Every handler is idempotent by txid; an Abort may arrive before its Prepare and
//     leaves a tombstone that makes the later Prepare vote NO.
//
// The state machine (state.go) is pure: no clock, no I/O. The driver and the participant
// take their transport, clock and journal from their constructors. Transports are
// unreliable by contract (loss, delay, duplication, reordering); the driver resends.
// This package imports neither NATS nor Raft.
package twophase
