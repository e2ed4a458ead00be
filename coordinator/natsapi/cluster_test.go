package natsapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// With a real 3-node cluster, exactly one node answers a status request, and it is
// the leader; after a leader change, exactly one again, the new leader.
func TestOnlyTheLeaderAnswers(t *testing.T) {
	c := natsapitest.Start(t, natsapitest.Options{})
	nc := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	responders := func() (int, *smv1.StatusResponse) {
		t.Helper()
		reply := nc.NewInbox()
		sub, err := nc.SubscribeSync(reply)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		data, _ := proto.Marshal(&smv1.StatusRequest{Id: "nothing"})
		if err := nc.PublishRequest("sm.v1.status", reply, data); err != nil {
			t.Fatal(err)
		}
		var n int
		var last *smv1.StatusResponse
		// Wait for the first answer, then collect any other that follows.
		wait := 5 * time.Second
		for {
			m, err := sub.NextMsg(wait)
			if err != nil {
				return n, last
			}
			wait = 300 * time.Millisecond
			n++
			last = new(smv1.StatusResponse)
			_ = proto.Unmarshal(m.Data, last)
		}
	}
	for round := 0; round < 2; round++ {
		leader := c.WaitServing(ctx)
		if round > 0 {
			// Node.Status waits for the FSM to reach the commit index, and a new
			// leader's no-op and barrier entries never reach a BatchingFSM: until a
			// command is applied, status reads on a quiet new leader time out
			// (reported; see the natsapi report). Real traffic applies commands.
			rr := new(smv1.RegisterShardResponse)
			request(t, nc, "sm.v1.shard.register", mustMarshal(t, &smv1.ShardInfo{ShardId: "s1", Region: "eu-west"}), rr)
			if rr.GetError() != nil {
				t.Fatalf("register: %v", rr)
			}
		}
		before := make([]uint64, c.Size())
		for i := range before {
			if srv := c.API(i); srv != nil {
				before[i] = srv.Stats().StatusRequests
			}
		}
		n, resp := responders()
		if n != 1 || resp.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_NOT_FOUND {
			t.Fatalf("round %d: %d answers, last %v", round, n, resp)
		}
		for i := range before {
			srv := c.API(i)
			if srv == nil {
				continue
			}
			got := srv.Stats().StatusRequests - before[i]
			if (i == leader) != (got == 1) || got > 1 {
				t.Errorf("round %d: node %d (leader %d) handled %d status requests", round, i, leader, got)
			}
		}
		if round == 0 {
			c.Kill(leader)
			defer c.Restart(leader)
		}
	}
}

// Malformed messages on every subject of a real cluster are answered INVALID and never
// reach the log.
func TestMalformedNeverApplied(t *testing.T) {
	c := natsapitest.Start(t, natsapitest.Options{})
	nc := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.WaitServing(ctx)
	node := c.Node(leader)
	shards := len(node.FSM().Shards())

	reply, sub := inbox(t, nc)
	publishProposal(t, nc, "junk-1", garbage, reply)
	publishProposal(t, nc, "junk-2", mustMarshal(t, &smv1.Proposal{ProposalId: "junk-2"}), reply) // decodes, invalid
	for range 2 {
		resp, _ := nextResponse(t, sub)
		if resp.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID {
			t.Fatalf("response %v", resp)
		}
	}
	for _, subj := range []string{"sm.v1.status", "sm.v1.lease", "sm.v1.shard.register"} {
		m, err := nc.Request(subj, garbage, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var e interface{ GetError() *smv1.ApiError }
		switch subj {
		case "sm.v1.status":
			e = new(smv1.StatusResponse)
		case "sm.v1.lease":
			e = new(smv1.LeaseResponse)
		default:
			e = new(smv1.RegisterShardResponse)
		}
		if err := proto.Unmarshal(m.Data, e.(proto.Message)); err != nil || e.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID {
			t.Fatalf("%s: %v %v", subj, e, err)
		}
	}
	if st := c.API(leader).Stats(); st.Malformed != 4 || st.Invalid != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := node.FSM().TxnByProposal("junk-2"); ok {
		t.Fatal("an invalid proposal made a transaction")
	}
	if n := len(node.FSM().Unfinished()); n != 0 || len(node.FSM().Shards()) != shards {
		t.Fatalf("state changed: %d unfinished, %d shards", n, len(node.FSM().Shards()))
	}
}
