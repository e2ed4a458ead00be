// Package natsapi is a coordinator node's NATS face: the server side of the client API
// that proposers, match hosts and shards speak (docs/protocol.md). One Server runs per
// coordinator node; it serves only while its node leads, so followers never answer.
//
//	<p>.v1.req.propose       stream SM_REQ   Proposal, reply inbox in header Sm-Reply
//	<p>.v1.req.propose.<id>  stream SM_REQ   the same from proposer <id> (rate limited per id)
//	                         durable pull consumer coordinator-intake (explicit ack)
//	                         → ProposeResponse to the Sm-Reply inbox
//	<p>.v1.status            core request    StatusRequest → StatusResponse
//	<p>.v1.lease             core request    LeaseRequest (RENEW | RELEASE) → LeaseResponse
//	<p>.v1.shard.register    core request    ShardInfo → RegisterShardResponse
//	<p>.v1.events.match.<o>  stream SM_EVENTS Decision, Nats-Msg-Id = txid
//	<p>.v1.leader.index      core request    empty → LeaderIndex (JSON): the leader's id,
//	                         term, commit index and admin URL (Config.AdminURL), for
//	                         followers' readiness and their NOT_LEADER answers
//	                         (LeaderIndexClient); only with Config.CommitIndex
//
// Intake. The leader takes proposals from its durable consumer, runs each through
// Node.Propose, answers the proposer's inbox and acks the message only once the Raft
// entry that answers it is committed (Propose returns only then). Anything short of a
// definite answer (not leader, leadership lost, unknown outcome, shutdown) is nak'd
// and redelivered, to this node or the next leader; Propose is idempotent by
// proposal_id, so a redelivery never makes a second match.
//
// Limits. Before a proposal is read: an Sm-Reply that is not a client inbox
// (natsutil.IsInbox) gets it terminated unread (no publish where a forged header
// points); one over MaxProposalBytes is answered INVALID and terminated; one over its
// proposer's token bucket (ProposerRate, ProposerBurst; in the leader's memory only)
// is answered RATE_LIMITED and acked. Core requests over MaxRequestBytes are answered
// INVALID, and those whose reply subject is not an inbox are dropped. Each is counted
// (Stats.ForgedReply, Oversized, RateLimited).
//
// Events. Every replica sees every decision (Decided, wired to
// coordinator.Config.OnDecided); only the leader publishes them, asynchronously, with
// Nats-Msg-Id = txid so the stream stores each once within its dedupe window. Each
// replica also remembers the decisions of the last ReplayWindow and publishes them again
// when it takes over, which covers decisions the old leader applied but never got to
// publish; the dedupe window absorbs the copies it did publish. Events are therefore
// at least once, and exactly once within the dedupe window.
//
// Tracing. Each proposal is a consumer span, shardmatch.intake, child of the trace
// context its message carries; the node's policy and Raft spans and the driver's
// spans to the shards hang under it, and its traceparent goes on the answer and the
// decision event. Core requests are server spans, shardmatch.api.<request>.
//
// What this package must never do:
//   - answer while its node does not lead, or answer from a follower's state;
//   - ack a proposal before Node.Propose returned a definite answer (a decision or
//     INVALID): an acked request is one whose answer is in the Raft log;
//   - report an indeterminate result as a failure: ErrLeadershipLost and friends are
//     OUTCOME_UNKNOWN, and the message goes back for redelivery;
//   - block in Decided, which runs with the FSM lock held, or in Leading, which runs on
//     the node's leadership goroutine;
//   - crash, or pass anything to the node, for a message it cannot decode: such
//     messages are counted, answered INVALID when they name a reply address, and
//     terminated.
package natsapi
