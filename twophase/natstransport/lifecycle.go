package natstransport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// ShardServerStats are a ShardServer's counters since Serve.
type ShardServerStats struct {
	Received    uint64 // messages taken from the consumer
	Redelivered uint64 // of which delivered before (ack lost, AckWait passed, or nak)
	Handled     uint64 // commands answered and acked
	Votes       uint64 // votes published
	Acks        uint64 // acks published
	// Malformed commands could not be decoded, had no Prepare/Commit/Abort or no
	// txid. WrongShard commands named another shard. Rejected commands were refused
	// by the handler for good (malformed, wrong shard, conflicting decision). All
	// three are logged and terminated: never applied, never redelivered.
	Malformed, WrongShard, Rejected uint64
	// Unsigned, UnknownSigner and BadSignature commands were refused by
	// ParticipantConfig.Verifier: no signature, a key it does not trust, or a signature
	// that does not match this shard's subject and the payload. Terminated, never
	// decoded nor handled. Always zero without a Verifier.
	Unsigned, UnknownSigner, BadSignature uint64
	HandlerErrors                         uint64 // transient handler errors, nak'd for redelivery with backoff
	PublishErrors                         uint64 // replies that could not be published (nak'd)
	AckErrors                             uint64 // acks, naks and terms that could not be sent
	Returned                              uint64 // queued commands nak'd back at Close
	ConsumeErrors                         uint64 // errors from the consumer (missed heartbeats, status)
	// Batches are the ShardCommandBatch messages taken (each counts once in Received;
	// its commands count in Handled, Votes, Acks and the rest as lone ones do).
	Batches uint64
}

type serverCounters struct {
	received, redelivered, handled, votes, acks, malformed, wrongShard, rejected atomic.Uint64
	handlerErrors, publishErrors, ackErrors, returned, consumeErrors             atomic.Uint64
	unsigned, unknownSigner, badSignature                                        atomic.Uint64
	batches                                                                      atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *ShardServer) Stats() ShardServerStats {
	c := &s.stats
	return ShardServerStats{
		Received: c.received.Load(), Redelivered: c.redelivered.Load(), Handled: c.handled.Load(),
		Votes: c.votes.Load(), Acks: c.acks.Load(), Malformed: c.malformed.Load(), WrongShard: c.wrongShard.Load(),
		Rejected: c.rejected.Load(), HandlerErrors: c.handlerErrors.Load(), PublishErrors: c.publishErrors.Load(),
		AckErrors: c.ackErrors.Load(), Returned: c.returned.Load(), ConsumeErrors: c.consumeErrors.Load(),
		Unsigned: c.unsigned.Load(), UnknownSigner: c.unknownSigner.Load(), BadSignature: c.badSignature.Load(),
		Batches: c.batches.Load(),
	}
}

// SignatureRejected is the sum of the commands refused for their signature.
func (s ShardServerStats) SignatureRejected() uint64 {
	return s.Unsigned + s.UnknownSigner + s.BadSignature
}

// ShardID returns the shard this server answers for.
func (s *ShardServer) ShardID() string { return s.cfg.ShardID }

// Done is closed once the server has stopped: after Drain or Close, or on its own when
// its connection closed or its consumer was deleted (it logs that at error level).
func (s *ShardServer) Done() <-chan struct{} { return s.done }

// Drain stops taking commands, handles every command already delivered to this
// process, publishes their replies, acks them, and flushes the connection. If ctx ends
// first, the handlers' context is cancelled, commands still queued are handed back
// (nak) for redelivery, and Drain returns ctx's error once the handlers in progress
// have returned. In-doubt recovery stops at once.
func (s *ShardServer) Drain(ctx context.Context) error {
	s.stop()
	s.iter.Drain()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.hcancel()
		<-s.done
		return fmt.Errorf("natstransport: drain shard %s: %w", s.cfg.ShardID, ctx.Err())
	}
	s.hcancel()
	return s.flush(ctx)
}

// Close stops at once: commands buffered but not yet queued are dropped (JetStream
// redelivers them after AckWait), queued ones are handed back (nak), and the handlers
// in progress see their context cancelled. It returns once they have returned.
func (s *ShardServer) Close() error {
	s.stop()
	s.hcancel()
	s.iter.Stop()
	<-s.done
	return nil
}

func (s *ShardServer) stop() {
	s.stopOnce.Do(func() {
		close(s.stopCh)
		s.rcancel()
	})
}

func (s *ShardServer) flush(ctx context.Context) error {
	if s.cfg.Conn.IsClosed() {
		return nil
	}
	if err := flush(ctx, s.cfg.Conn); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natstransport: drain shard %s: flush: %w", s.cfg.ShardID, err)
	}
	return nil
}
