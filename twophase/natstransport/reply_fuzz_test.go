package natstransport

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// FuzzCoordinatorReply feeds arbitrary bytes to the coordinator's vote/ack handler on
// a vote or ack subject of shard s1 (sel picks one, or a subject that is neither).
// Each message is counted exactly once (vote, ack, malformed or shard mismatch), and
// only a reply of the subject's kind, with a txid and the subject's shard, reaches
// the coordinator: a vote on s1's subject saying s2 never does.
func FuzzCoordinatorReply(f *testing.F) {
	for _, r := range []*smv1.ShardReply{
		{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: "tx-1-0", ShardId: "s1", Vote: smv1.VoteValue_VOTE_YES, Term: 2}}},
		{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: "tx-1-0", ShardId: "s2", Vote: smv1.VoteValue_VOTE_NO,
			Rejections: []*smv1.PlayerRejection{{PlayerId: "x", Code: "busy"}}}}},
		{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "tx-1-0", ShardId: "s1", Term: 1}}},
		{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{ShardId: "s1"}}},
	} {
		b, _ := proto.Marshal(r)
		for sel := range uint8(3) {
			f.Add(sel, b)
		}
	}
	f.Add(uint8(0), []byte{0x0a, 0xff, 0x01})
	srv := natstest.Start(f)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(nc.Close)
	var got []*smv1.ShardReply
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCoordinator(ctx, CoordinatorConfig{Conn: nc, SkipEnsureStreams: true,
		Replies: func(r *smv1.ShardReply) { got = append(got, r) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	subj := natsutil.MustSubjects(natsutil.DefaultPrefix)
	vote, _ := subj.CoordVote("s1")
	ack, _ := subj.CoordAck("s1")
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		subject := []string{vote, ack, "sm.v1.coord.nothing.s1"}[sel%3]
		got = got[:0]
		before := c.Stats()
		c.onReply(&nats.Msg{Subject: subject, Data: data})
		after := c.Stats()
		counted := (after.Votes - before.Votes) + (after.Acks - before.Acks) + (after.Malformed - before.Malformed) +
			(after.ShardMismatch - before.ShardMismatch)
		if counted != 1 {
			t.Fatalf("one reply counted %d times: %+v → %+v", counted, before, after)
		}
		if len(got) == 0 {
			return
		}
		r := got[0]
		switch subject {
		case vote:
			if v := r.GetVote(); v == nil || v.GetTxid() == "" || v.GetShardId() != "s1" {
				t.Fatalf("delivered %v from %s", r, subject)
			}
		case ack:
			if a := r.GetAck(); a == nil || a.GetTxid() == "" || a.GetShardId() != "s1" {
				t.Fatalf("delivered %v from %s", r, subject)
			}
		default:
			t.Fatalf("delivered %v from %s", r, subject)
		}
	})
}
