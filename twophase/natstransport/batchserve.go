package natstransport

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// errReturned is a batched command a closing server did not run: its batch is
// redelivered for the next server.
var errReturned = errors.New("natstransport: server closing; command handed back")

// cmdBatch follows one ShardCommandBatch message while its commands run on the
// workers of their txids. The last command to finish answers for the whole message:
// it publishes the replies gathered as one ShardReplyBatch, then acks the message,
// or naks it if any command failed for now (its redelivery runs every command again;
// handlers are idempotent by txid, and a repeated reply is harmless).
type cmdBatch struct {
	msg     jetstream.Msg
	mu      sync.Mutex
	left    int
	replies []*smv1.ShardReply
	retry   bool
}

// routeBatch decodes a ShardCommandBatch and hands each of its commands to the
// worker of its txid. A command that is malformed or names another shard is dropped
// and counted as it would be alone; a batch with no command left is terminated.
func (s *ShardServer) routeBatch(m jetstream.Msg) {
	b := new(smv1.ShardCommandBatch)
	if err := proto.Unmarshal(m.Data(), b); err != nil {
		s.terminate(m, &s.stats.malformed, "undecodable command batch", err)
		return
	}
	if m.Subject() != s.cmdSubj {
		s.terminate(m, &s.stats.wrongShard, fmt.Sprintf("command batch on %s", m.Subject()), nil)
		return
	}
	tps := b.GetTraceparents()
	jobs := make([]job, 0, len(b.GetCommands()))
	batch := &cmdBatch{msg: m}
	for i, cmd := range b.GetCommands() {
		info := describe(cmd)
		if why, counter := s.refusal(info, m.Subject()); why != "" {
			s.dropBatched(counter, m, why)
			continue
		}
		var tp string
		if i < len(tps) {
			tp = tps[i]
		}
		jobs = append(jobs, job{msg: m, cmd: cmd, info: info, tp: tp, batch: batch})
	}
	if len(jobs) == 0 {
		s.terminate(m, &s.stats.malformed, "command batch without a command for this shard", nil)
		return
	}
	s.stats.batches.Add(1)
	batch.left = len(jobs)
	for _, j := range jobs {
		s.enqueue(j)
	}
}

// dropBatched counts and logs one command of a batch that is not run.
func (s *ShardServer) dropBatched(counter interface{ Add(uint64) uint64 }, m jetstream.Msg, why string) {
	counter.Add(1)
	s.log.Error("dropping batched command: "+why, "subject", m.Subject(), "bytes", len(m.Data()))
}

// batchDone records one batched command's outcome; the last one finishes the batch.
func (s *ShardServer) batchDone(b *cmdBatch, reply *smv1.ShardReply, err error) {
	b.mu.Lock()
	switch {
	case errors.Is(err, errReturned):
		b.retry = true
	case err != nil && permanent(err):
		s.stats.rejected.Add(1) // refused for good, as a lone command is terminated
	case err != nil:
		s.stats.handlerErrors.Add(1)
		b.retry = true
	case reply != nil:
		b.replies = append(b.replies, reply)
	}
	if err == nil {
		s.stats.handled.Add(1)
	}
	b.left--
	last := b.left == 0
	b.mu.Unlock()
	if last {
		s.finishBatch(b)
	}
}

// finishBatch publishes a batch's replies, then acks its message (naks it if a
// command is to run again or the replies could not be published).
func (s *ShardServer) finishBatch(b *cmdBatch) {
	if len(b.replies) > 0 {
		if err := s.publishBatch(b.replies); err != nil {
			s.stats.publishErrors.Add(1)
			s.log.Warn("publishing batched replies failed; redelivering", "replies", len(b.replies), "err", err)
			b.retry = true
		}
	}
	if b.retry {
		if err := b.msg.NakWithDelay(s.nakDelay(b.msg)); err != nil {
			s.stats.ackErrors.Add(1)
		}
		return
	}
	if err := b.msg.Ack(); err != nil {
		s.stats.ackErrors.Add(1)
		s.log.Debug("ack of a command batch failed; it will be redelivered and answered again", "err", err)
	}
}

// publishBatch publishes replies as one ShardReplyBatch on the shard's vote subject.
func (s *ShardServer) publishBatch(replies []*smv1.ShardReply) error {
	var votes, acks uint64
	for _, r := range replies {
		switch {
		case r.GetVote() != nil:
			votes++
		case r.GetAck() != nil:
			acks++
		default:
			return errors.New("handler returned a reply with neither vote nor ack")
		}
	}
	data, err := proto.Marshal(&smv1.ShardReplyBatch{Replies: replies})
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: s.voteSubj, Data: data, Header: nats.Header{HeaderBatch: {fmt.Sprint(len(replies))}}}
	if err := s.publishReply(m); err != nil {
		return err
	}
	s.stats.votes.Add(votes)
	s.stats.acks.Add(acks)
	return nil
}
