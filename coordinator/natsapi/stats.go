package natsapi

import (
	"sync/atomic"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Stats are a Server's counters since New.
type Stats struct {
	Leaderships uint64 // times it started serving
	// StepDowns counts leaderships handed over because NATS was unreachable.
	StepDowns uint64

	// Intake.
	Proposals   uint64 // proposals taken from the intake consumer (deliveries)
	Redelivered uint64 // of which delivered before
	Committed   uint64 // answered with a COMMITTED decision
	Aborted     uint64 // answered with an ABORTED decision (policy, leased, shards, failover)
	Invalid     uint64 // answered INVALID by the node (validation, unknown shard) and acked
	Unknown     uint64 // outcome unknown (leadership lost, timeout): answered so, nak'd
	Nakd        uint64 // handed back for redelivery without a definite answer
	Returned    uint64 // handed back untouched because the term had ended
	Acked       uint64 // acks sent: requests whose answer is in the log

	// Requests.
	StatusRequests, LeaseRequests, RegisterRequests uint64
	// InvalidRequests were well-formed protobuf but lacked a field (id, txid, op,
	// shard id).
	InvalidRequests uint64
	// ErrorCodes counts the errors answered, by wire code, for proposals' definite
	// failures and all requests (INVALID from validation, NOT_FOUND, CONFLICT, ...).
	ErrorCodes map[smv1.ErrorCode]uint64

	// Malformed messages could not be decoded (any subject): answered INVALID where
	// a reply address was given, never passed to the node.
	Malformed uint64
	NoReply   uint64 // core requests without a reply subject, dropped
	BadReply  uint64 // proposals whose Sm-Reply inbox ReplyPrefixes refused (decided, answered nowhere)
	// ForgedReply counts proposals whose Sm-Reply, and core requests whose reply
	// subject, was not a client inbox (natsutil.IsInbox): dropped unread (a proposal
	// terminated), answered nowhere.
	ForgedReply uint64
	// Oversized counts proposals over MaxProposalBytes and requests over
	// MaxRequestBytes: answered INVALID, never decoded.
	Oversized uint64
	// RateLimited counts proposals over their proposer's rate: answered RATE_LIMITED,
	// acked, never passed to the node.
	RateLimited uint64
	// ProposersTracked is how many proposer identities the rate limiter remembers now.
	ProposersTracked int

	Replies       uint64 // answers published
	ReplyErrors   uint64 // answers that could not be published
	AckErrors     uint64 // acks, naks and terms that could not be sent
	ConsumeErrors uint64 // intake consumer errors (bind failures, missed heartbeats)

	// Events.
	Decisions          uint64 // decisions seen (every replica)
	EventsPublished    uint64 // stored in the events stream
	EventsDeduplicated uint64 // confirmed as duplicates (published before, e.g. replay)
	EventErrors        uint64 // publishes that failed (retried while leading)
	EventsReplayed     uint64 // queued again at takeover from the replay window
	EventsDropped      uint64 // dropped because the queue was full
	EventsAbandoned    uint64 // queued when leadership ended (the next leader replays them)
}

type counters struct {
	leaderships, stepDowns                                                              atomic.Uint64
	proposals, redelivered, committed, aborted, invalid, unknown, nakd, returned, acked atomic.Uint64
	statusRequests, leaseRequests, registerRequests, invalidRequests                    atomic.Uint64
	malformed, noReply, badReply, replies, replyErrors, ackErrors, consumeErrors        atomic.Uint64
	forgedReply, oversized, rateLimited                                                 atomic.Uint64
	decisions, eventsPublished, eventsDeduplicated, eventErrors                         atomic.Uint64
	codes                                                                               [8]atomic.Uint64
}

func (c *counters) countCode(code smv1.ErrorCode) {
	if i := int(code); i >= 0 && i < len(c.codes) {
		c.codes[i].Add(1)
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Leaderships: c.leaderships.Load(), StepDowns: c.stepDowns.Load(),
		Proposals: c.proposals.Load(), Redelivered: c.redelivered.Load(), Committed: c.committed.Load(),
		Aborted: c.aborted.Load(), Invalid: c.invalid.Load(), Unknown: c.unknown.Load(), Nakd: c.nakd.Load(),
		Returned: c.returned.Load(), Acked: c.acked.Load(),
		StatusRequests: c.statusRequests.Load(), LeaseRequests: c.leaseRequests.Load(),
		RegisterRequests: c.registerRequests.Load(), InvalidRequests: c.invalidRequests.Load(),
		ErrorCodes: map[smv1.ErrorCode]uint64{},
		Malformed:  c.malformed.Load(), NoReply: c.noReply.Load(), BadReply: c.badReply.Load(),
		Replies: c.replies.Load(), ReplyErrors: c.replyErrors.Load(), AckErrors: c.ackErrors.Load(),
		ConsumeErrors: c.consumeErrors.Load(),
		ForgedReply:   c.forgedReply.Load(), Oversized: c.oversized.Load(), RateLimited: c.rateLimited.Load(),
		ProposersTracked: s.limiter.tracked(),
		Decisions:        c.decisions.Load(), EventsPublished: c.eventsPublished.Load(),
		EventsDeduplicated: c.eventsDeduplicated.Load(), EventErrors: c.eventErrors.Load(),
	}
	for i := range c.codes {
		if n := c.codes[i].Load(); n > 0 {
			st.ErrorCodes[smv1.ErrorCode(i)] = n
		}
	}
	s.events.mu.Lock()
	st.EventsReplayed, st.EventsDropped, st.EventsAbandoned = s.events.replayed, s.events.dropped, s.events.abandoned
	s.events.mu.Unlock()
	return st
}
