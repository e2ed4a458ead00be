package natstransport_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func voteReply(txid, shard string) *smv1.ShardReply {
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: txid, ShardId: shard, Vote: smv1.VoteValue_VOTE_YES}}}
}

func ackReply(txid, shard string) *smv1.ShardReply {
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: txid, ShardId: shard, Outcome: smv1.Outcome_OUTCOME_COMMITTED}}}
}

// Junk on the command subject is terminated and counted, never handed to the handler
// and never redelivered; a decision contradicting the journal is refused the same way;
// good commands keep flowing.
func TestMalformedCommands(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	g := newGame()
	part := newParticipant(t, "s1", g, nil)
	srv := serve(t, env.connect(), "s1", part, nil)
	raw := env.connect()
	js := env.js(raw)
	ctx := context.Background()

	for _, data := range [][]byte{
		{0xff, 0xff, 0xff},              // not protobuf
		nil,                             // an empty command
		marshal(t, &smv1.Batch{}),       // another message: decodes to nothing known
		marshal(t, prepare("", "s1")),   // no txid
		marshal(t, prepare("tx", "s2")), // another shard's prepare on s1's subject
	} {
		if _, err := js.Publish(ctx, "sm.v1.shard.s1.cmd", data); err != nil {
			t.Fatal(err)
		}
	}
	send(t, coord, "s1", abort("txC", "s1"))
	sink.waitAcks(t, 1)
	send(t, coord, "s1", commit("txC", "s1")) // contradicts the abort
	send(t, coord, "s1", prepare("txOK", "s1", players("ok")...))
	sink.waitVotes(t, 1)

	testutil.WaitFor(t, 10*time.Second, "every message to be handled or dropped", func() error {
		s := srv.Stats()
		if s.Malformed != 4 || s.WrongShard != 1 || s.Rejected != 1 || s.Handled != 2 {
			return fmt.Errorf("server stats %+v", s)
		}
		if info := consumerInfo(t, js, "s1"); info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer: %d ack pending, %d redelivered, %d pending", info.NumAckPending, info.NumRedelivered, info.NumPending)
		}
		return nil
	})
	if p, c, a := g.counts("tx"); p+c+a != 0 {
		t.Errorf("the other shard's prepare reached the game: %d %d %d", p, c, a)
	}
	if s := part.Stats(); s.Violations != 1 || s.Prepares != 1 {
		t.Errorf("participant stats = %+v", s)
	}
}

// Junk on the vote and ack subjects, and replies for one shard on another's subject,
// are dropped and counted, never handed to the driver.
func TestMalformedReplies(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	coord := newCoordinator(t, env.connect(), sink.handle)
	raw := env.connect()
	pub := func(subject string, data []byte) {
		t.Helper()
		if err := raw.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	pub("sm.v1.coord.vote.s1", []byte{0xff, 0x01})                    // not protobuf
	pub("sm.v1.coord.vote.s1", marshal(t, ackReply("tx1", "s1")))     // an ack on a vote subject
	pub("sm.v1.coord.vote.s1", marshal(t, voteReply("", "s1")))       // no txid
	pub("sm.v1.coord.vote.s1", nil)                                   // empty
	pub("sm.v1.coord.vote.s1", marshal(t, voteReply("tx1", "s2")))    // s2's vote on s1's subject
	pub("sm.v1.coord.vote.a/b", marshal(t, voteReply("tx1", "a/b")))  // not a valid shard id
	pub("sm.v1.coord.ack.s1", []byte("garbage"))                      // not protobuf
	pub("sm.v1.coord.ack.s1", marshal(t, ackReply("tx1", "s3")))      // s3's ack on s1's subject
	pub("sm.v1.coord.vote.s1", marshal(t, voteReply("marker", "s1"))) // good
	pub("sm.v1.coord.ack.s1", marshal(t, ackReply("marker", "s1")))   // good
	// Each subject's subscription delivers in order: once its marker is in, the junk
	// before it has been judged.
	sink.waitVotes(t, 1)
	sink.waitAcks(t, 1)
	if v, a, total := sink.counts(); v != 1 || a != 1 || total != 2 {
		t.Errorf("replies handed over: %d votes, %d acks, %d calls", v, a, total)
	}
	if s := coord.Stats(); s.Malformed != 6 || s.ShardMismatch != 2 || s.Votes != 1 || s.Acks != 1 {
		t.Errorf("coordinator stats = %+v", s)
	}
}
