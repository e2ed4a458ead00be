package natstransport_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

func always(string) bool { return true }

// publishBatch puts a ShardCommandBatch straight onto shard's command subject.
func publishBatch(t *testing.T, env *natsEnv, nc *nats.Conn, shard string, cmds ...*smv1.ShardCommand) {
	t.Helper()
	data, err := proto.Marshal(&smv1.ShardCommandBatch{Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	m := &nats.Msg{Subject: "sm.v1.shard." + shard + ".cmd", Data: data,
		Header: nats.Header{natstransport.HeaderBatch: {fmt.Sprint(len(cmds))}}}
	if _, err := env.js(nc).PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// A batch's bad commands are dropped and counted one by one, as they would be alone,
// and its good ones run; a batch with nothing to run is terminated.
func TestBatchWithBadCommands(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	newCoordinator(t, env.connect(), sink.handle) // makes the streams, takes the replies
	g := newGame()
	srv := serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), nil)
	raw := env.connect()

	publishBatch(t, env, raw, "s1", prepare("good", "s1", players("p1")...), prepare("other", "s2", players("p2")...),
		&smv1.ShardCommand{}, prepare("", "s1"))
	sink.waitVotes(t, 1)
	if v := sink.vote("good", "s1"); v.GetVote() != smv1.VoteValue_VOTE_YES {
		t.Fatalf("vote for good = %v", v)
	}
	publishBatch(t, env, raw, "s1", prepare("other2", "s2"))
	testutil.WaitFor(t, 10*time.Second, "the batches to be counted", func() error {
		if s := srv.Stats(); s.WrongShard != 2 || s.Malformed != 3 || s.Batches != 1 || s.Handled != 1 {
			return fmt.Errorf("server stats = %+v: want 2 wrong shard (one per batch), 3 malformed (2 commands, 1 empty batch), 1 batch run, 1 handled", s)
		}
		return nil
	})
	if p, _, _ := g.counts("other"); p != 0 {
		t.Errorf("another shard's prepare reached the game %d times", p)
	}
	if _, _, total := sink.counts(); total != 1 {
		t.Errorf("%d replies, want the one vote", total)
	}
}

// A command of a batch that fails for now sends the whole message back; its
// redelivery runs every command again, and each effect still happens once.
func TestBatchRedeliveredAfterTransientFailure(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	coord.SetBatches(always)
	g := newGame()
	part := newParticipant(t, "s1", g, nil)
	srv := serve(t, env.connect(), "s1", part, nil)

	const txns = 16
	for i := range txns {
		send(t, coord, "s1", prepare(fmt.Sprintf("tx%02d", i), "s1", players(fmt.Sprintf("p%d", i))...))
	}
	sink.waitVotes(t, txns)
	g.mu.Lock()
	g.failCommit = 1
	g.mu.Unlock()
	// One batch of every commit, so that the failure is inside a batch.
	commits := make([]*smv1.ShardCommand, txns)
	for i := range txns {
		commits[i] = commit(fmt.Sprintf("tx%02d", i), "s1")
	}
	publishBatch(t, env, env.connect(), "s1", commits...)
	testutil.WaitFor(t, 20*time.Second, "every txid acked", func() error {
		for i := range txns {
			if sink.ack(fmt.Sprintf("tx%02d", i), "s1") == nil {
				return fmt.Errorf("no ack for tx%02d", i)
			}
		}
		return nil
	})
	for i := range txns {
		if _, c, _ := g.counts(fmt.Sprintf("tx%02d", i)); c != 1 {
			t.Errorf("tx%02d committed %d times", i, c)
		}
	}
	if s := srv.Stats(); s.HandlerErrors != 1 || s.Batches < 2 || s.Redelivered == 0 {
		t.Errorf("server stats = %+v: want the failed commit counted and its batch redelivered", s)
	}
	if s := part.Stats(); s.Anomalies != 0 || s.Commits != txns {
		t.Errorf("participant stats = %+v", s)
	}
}

// The coordinator takes each reply of a ShardReplyBatch as if it came alone, and
// still refuses one that speaks for a shard other than its subject's.
func TestReplyBatchChecksEachReply(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	raw := env.connect()
	vote := func(txid, shard string) *smv1.ShardReply {
		return &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: txid, ShardId: shard, Vote: smv1.VoteValue_VOTE_YES}}}
	}
	ack := &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "t2", ShardId: "s1"}}}
	data, err := proto.Marshal(&smv1.ShardReplyBatch{Replies: []*smv1.ShardReply{vote("t1", "s1"), vote("t3", "s2"), ack, {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.PublishMsg(&nats.Msg{Subject: "sm.v1.coord.vote.s1", Data: data,
		Header: nats.Header{natstransport.HeaderBatch: {"4"}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the batch's replies", func() error {
		if s := coord.Stats(); s.BatchReplies != 1 || s.Votes != 1 || s.Acks != 1 || s.ShardMismatch != 1 || s.Malformed != 1 {
			return fmt.Errorf("stats = %+v: want 1 batch, 1 vote, 1 ack, 1 shard mismatch, 1 malformed", s)
		}
		return nil
	})
	if sink.vote("t1", "s1") == nil || sink.ack("t2", "s1") == nil || sink.vote("t3", "s2") != nil {
		t.Errorf("delivered: t1 vote %v, t2 ack %v, t3 vote (from the wrong shard) %v",
			sink.vote("t1", "s1"), sink.ack("t2", "s1"), sink.vote("t3", "s2"))
	}
}

// Signed batches: the coordinator signs each batch once, a verifying shard accepts
// it, and one verifying against another key refuses it without running anything.
func TestSignedBatches(t *testing.T) {
	f := newSigFixture(t, true)
	f.coord.SetBatches(always)
	for i := range 8 {
		f.commitMatch(t, fmt.Sprintf("signed%d", i))
	}
	if s := f.srvs["s1"].Stats(); s.SignatureRejected() != 0 {
		t.Fatalf("server stats = %+v: signed commands refused", s)
	}
	f.srvs["s1"].SetVerifier(trust(t, newSigner(t)))
	votes, _, _ := f.sink.counts()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() { send(t, f.coord, "s1", prepare(fmt.Sprintf("refused%d", i), "s1", players("x")...)) })
	}
	wg.Wait()
	testutil.WaitFor(t, 10*time.Second, "the untrusted commands to be refused", func() error {
		if s := f.srvs["s1"].Stats(); s.UnknownSigner == 0 {
			return fmt.Errorf("server stats = %+v", s)
		}
		return nil
	})
	if v, _, _ := f.sink.counts(); v != votes {
		t.Errorf("%d votes after untrusted commands, want %d", v, votes)
	}
	for i := range 16 {
		if p, _, _ := f.games["s1"].counts(fmt.Sprintf("refused%d", i)); p != 0 {
			t.Errorf("refused%d reached the game", i)
		}
	}
}
