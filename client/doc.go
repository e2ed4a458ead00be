// Package client is the shardmatch SDK for proposers (matchmakers that form
// cross-shard matches), match hosts (who renew and release a committed match's
// leases) and shard servers (who register themselves and recover in-doubt
// transactions). It speaks the coordinator's NATS API (docs/protocol.md):
//
//	Propose        JetStream publish to <p>.v1.req.propose (stream SM_REQ),
//	               Nats-Msg-Id = proposal_id, reply inbox in header Sm-Reply
//	Status         core request <p>.v1.status
//	Renew/Release  core request <p>.v1.lease
//	RegisterShard  core request <p>.v1.shard.register
//
// Only the coordinator leader answers; the client finds it by asking the subject, and
// retries through leader changes until its context ends.
//
// Idempotency. A proposal's proposal_id is its idempotency key: the coordinator
// creates at most one transaction per proposal_id, and every call with that id gets
// that transaction's decision. Propose relies on it: when an attempt gets no answer it
// asks Status, and re-sends the same proposal (same proposal_id) only when the leader
// has no record of it. So a Propose never creates a second transaction, and a caller
// whose Propose returned ErrOutcomeUnknown must retry with the same proposal_id (or ask
// Status), never under a new one. The coordinator remembers a finished transaction
// for its retention period (10 minutes by default): within it, any repeat of a
// proposal_id gets the first decision; after it, the id is free again.
//
// Outcomes and errors. A match the policy refuses, whose players are leased elsewhere,
// or that a shard rejected, is not an error: it is a Decision with outcome
// OUTCOME_ABORTED and a reason (REASON_POLICY_DENIED, REASON_PLAYER_LEASED, ...).
// Errors are for requests that got no decision: ErrInvalid (malformed, nothing
// changed; *InvalidError names the field), ErrOutcomeUnknown (the context ended first;
// *OutcomeUnknownError carries the proposal id and txid if known), ErrNotFound,
// ErrConflict, ErrUnavailable. IsRetryable tells them apart.
//
// Tracing. Every call is an OpenTelemetry client span (shardmatch.propose,
// shardmatch.status, shardmatch.renew, shardmatch.release, shardmatch.register_shard)
// on the global TracerProvider, a no-op unless the program installed one; the span's
// W3C traceparent travels with every message, so the coordinator's and the shards'
// spans join the caller's trace. WithTraceParent starts from a bare traceparent.
//
// What this package must never do:
//   - send one proposal under two proposal_ids, or report a proposal failed when it
//     may have taken effect;
//   - import the coordinator: an SDK embedded in game servers stays small (nats.go,
//     protobuf, the generated schema, the OpenTelemetry API but never its SDK or
//     exporters: the program that embeds it chooses those).
package client
