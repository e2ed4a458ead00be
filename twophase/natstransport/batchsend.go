package natstransport

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// HeaderBatch marks a message that carries a ShardCommandBatch (coordinator ->
// shard) or a ShardReplyBatch (shard -> coordinator); its value is the number of
// commands or replies in it.
const HeaderBatch = "Sm-Batch"

// Batching limits. A batch is cut at whichever comes first; NATS's default
// max_payload is 1 MiB.
const (
	maxBatchCommands = 256
	maxBatchBytes    = 256 << 10
	// batchPubAckWait bounds how long a shard's sender waits for the PubAck of the
	// batch it published before it publishes the next: the wait is what lets commands
	// gather under load, and the bound keeps a lost PubAck from stalling the shard.
	batchPubAckWait = 10 * time.Millisecond
)

// queuedCmd is one command waiting in a shard's send queue: its encoding and the
// headers it would carry alone (dedupe id, stream, term, trace), unsigned.
type queuedCmd struct {
	data   []byte
	header nats.Header
	term   uint64
}

// shardSender gathers the commands for one shard that accepts batches. The first
// Send to find it idle publishes its command alone (exactly as an unbatched Send
// would) and starts the sender's goroutine, which waits for that message's PubAck (at
// most batchPubAckWait), publishes everything queued meanwhile as one message, and
// repeats until the queue is empty. At low load every command goes alone and at once;
// under load the PubAck's round trip is when the next batch gathers, as in a group
// commit.
type shardSender struct {
	subject string
	mu      sync.Mutex
	queue   []queuedCmd
	running bool
}

// SetBatches tells the transport which shards take ShardCommandBatch messages
// (ShardInfo.command_batches); nil, the default, sends every command alone. It is
// read on every Send.
func (c *Coordinator) SetBatches(accepts func(shardID string) bool) {
	if accepts == nil {
		c.batches.Store(nil)
		return
	}
	c.batches.Store(&accepts)
}

func (c *Coordinator) batching(shardID string) bool {
	f := c.batches.Load()
	return f != nil && (*f)(shardID)
}

// enqueue hands a command to shardID's sender. If the sender is idle the command is
// published at once by the caller, alone, so that at low load batching adds no hop;
// the sender's goroutine then waits for that message's PubAck and publishes whatever
// gathered meanwhile. Otherwise the command waits in the queue.
func (c *Coordinator) enqueue(shardID, subject string, q queuedCmd) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.sendersMu.Lock()
	s := c.senders[shardID]
	if s == nil {
		s = &shardSender{subject: subject}
		c.senders[shardID] = s
	}
	c.sendersMu.Unlock()
	s.mu.Lock()
	if s.running {
		s.queue = append(s.queue, q)
		s.mu.Unlock()
		c.mu.RUnlock()
		return nil
	}
	s.running = true
	s.mu.Unlock()
	c.senderWG.Add(1) // before Close can wait: it takes c.mu exclusively first
	c.mu.RUnlock()
	ack, err := c.publishQueued(subject, []queuedCmd{q})
	go c.runSender(s, ack)
	return err
}

// runSender waits for ack (the PubAck of the message just published, nil if none),
// then publishes s's queue until it is empty.
func (c *Coordinator) runSender(s *shardSender, ack jetstream.PubAckFuture) {
	defer c.senderWG.Done()
	for {
		if ack != nil {
			t := time.NewTimer(batchPubAckWait)
			select {
			case <-ack.Ok():
			case <-ack.Err():
			case <-t.C:
			}
			t.Stop()
		}
		s.mu.Lock()
		n, size := 0, 0
		for n < len(s.queue) && n < maxBatchCommands && (n == 0 || size+len(s.queue[n].data) <= maxBatchBytes) {
			size += len(s.queue[n].data) + 64
			n++
		}
		if n == 0 {
			s.running = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.mu.Unlock()
		var err error
		ack, err = c.publishQueued(s.subject, batch)
		if errors.Is(err, ErrClosed) {
			s.mu.Lock()
			s.running, s.queue = false, nil
			s.mu.Unlock()
			return
		}
		if err != nil {
			c.stats.sendErrors.Add(uint64(len(batch)))
			c.log.Warn("commands not published; the driver will resend", "subject", s.subject, "commands", len(batch), "err", err)
		}
	}
}

// publishQueued publishes batch (one command alone, several as a ShardCommandBatch),
// signed if a Signer is set, and returns the PubAck future when the publish was not
// diverted by the fault hook. It is every Send's publish, batching or not. A lone
// command is signed per send over subject and payload only: Nats-Msg-Id and
// traceparent differ between resends (and the fault hook's duplicates) and are not
// signed.
func (c *Coordinator) publishQueued(subject string, batch []queuedCmd) (jetstream.PubAckFuture, error) {
	var m *nats.Msg
	if len(batch) == 1 {
		m = &nats.Msg{Subject: subject, Data: batch[0].data, Header: batch[0].header}
	} else {
		m = &nats.Msg{Subject: subject, Data: encodeBatch(batch), Header: batchHeader(c.cmd, batch)}
	}
	if sg := c.signer.Load(); sg != nil {
		sg.SignHeader(m.Header, subject, m.Data)
	}
	// Held shared across the publish so that Close cannot release the publisher under
	// it (a publish after CleanupPublisher would quietly re-create it).
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	var ack jetstream.PubAckFuture
	var err error
	if c.cfg.Faults == nil {
		ack, err = c.pub.PublishMsgAsync(m)
	} else {
		err = c.publishCmd(m)
	}
	if err != nil {
		return nil, err
	}
	c.stats.sent.Add(uint64(len(batch)))
	c.stats.messages.Add(1)
	if len(batch) > 1 {
		c.stats.batches.Add(1)
	}
	return ack, nil
}

// encodeBatch is the ShardCommandBatch of batch, built from the commands' own
// encodings: field 1 holds each command, field 2 each one's traceparent.
func encodeBatch(batch []queuedCmd) []byte {
	size := 0
	for _, q := range batch {
		size += len(q.data) + 70
	}
	b := make([]byte, 0, size)
	for _, q := range batch {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, q.data)
	}
	for _, q := range batch {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, q.header.Get(natsutil.TraceParentHeader))
	}
	return b
}

// batchHeader is a batch message's header: its size, the stream it must land in,
// and the highest term among its commands. It has no dedupe id: a resend may travel
// in another batch, and shards are idempotent by txid.
func batchHeader(stream string, batch []queuedCmd) nats.Header {
	var term uint64
	for _, q := range batch {
		term = max(term, q.term)
	}
	return nats.Header{
		HeaderBatch:                    {strconv.Itoa(len(batch))},
		jetstream.ExpectedStreamHeader: {stream},
		HeaderTerm:                     {strconv.FormatUint(term, 10)},
	}
}
