package twophase

import "errors"

// Errors of the participant SDK, its journals and the in-memory network. Test them with
// errors.Is: most are returned wrapped with the txid, player or path they concern.
var (
	// ErrWrongShard is returned for a command addressed to another shard. No reply is
	// sent: answering for someone else's players would be a lie the coordinator
	// believes.
	ErrWrongShard = errors.New("twophase: command for another shard")
	// ErrMalformedCommand is returned for a command with no Prepare, Commit or Abort in
	// it, or with an empty txid.
	ErrMalformedCommand = errors.New("twophase: malformed command")
	// ErrConflictingDecision is returned when a shard is told a decision that
	// contradicts one it already applied (Commit after Abort, Abort after Commit). It
	// means the coordinator broke atomicity; the participant refuses, counts a
	// violation and sends no reply, so the coordinator keeps resending and an operator
	// sees it.
	ErrConflictingDecision = errors.New("twophase: conflicting decision")
	// ErrStaleToken is returned by Participant.Fence for a fencing token lower than the
	// highest this shard has seen for the player. The concrete error is a
	// *StaleTokenError.
	ErrStaleToken = errors.New("twophase: stale fencing token")
	// ErrPrepareDeferred wraps the error a ShardHandler's Prepare returned: no vote
	// was sent and nothing journaled, so the Prepare is retried on its next delivery.
	ErrPrepareDeferred = errors.New("twophase: prepare deferred by the shard handler")
	// ErrJournalClosed is returned by a journal used after Close.
	ErrJournalClosed = errors.New("twophase: journal closed")
	// ErrJournalCorrupt is returned when a journal record cannot be decoded.
	ErrJournalCorrupt = errors.New("twophase: journal record corrupt")
	// ErrNetworkClosed is returned by a transport of an InmemNetwork after Close.
	ErrNetworkClosed = errors.New("twophase: in-memory network closed")
)
