package natsapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func request(tb testing.TB, nc *nats.Conn, subject string, data []byte, resp proto.Message) *nats.Msg {
	tb.Helper()
	m, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{natsutil.TraceParentHeader: {testTP}}}, 5*time.Second)
	if err != nil {
		tb.Fatalf("request %s: %v", subject, err)
	}
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestStatusLeaseRegister(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	node.status = func(ctx context.Context, id string) (*smv1.TxnRecord, error) {
		if tp, _ := natsutil.TraceParentFrom(ctx); tp != testTP {
			t.Errorf("status context traceparent %q", tp)
		}
		if id == "tx-1" {
			return &smv1.TxnRecord{Txid: id, State: smv1.TxnState_TXN_STATE_COMMITTED}, nil
		}
		if id == "gone" {
			return nil, &coordinator.NotLeaderError{LeaderID: "c3"}
		}
		return nil, fmt.Errorf("%w: %q", coordinator.ErrNotFound, id)
	}
	node.lease = func(_ context.Context, op, txid string) error {
		if txid == "released" {
			return fmt.Errorf("%w: already released", coordinator.ErrConflict)
		}
		return nil
	}
	node.register = func(_ context.Context, s *smv1.ShardInfo) error {
		if s.GetRegion() == "" {
			return &coordinator.InvalidError{Field: "region", Reason: "empty"}
		}
		return nil
	}
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)

	st := new(smv1.StatusResponse)
	m := request(t, nc, "sm.v1.status", mustMarshal(t, &smv1.StatusRequest{Id: "tx-1"}), st)
	if st.GetTxn().GetTxid() != "tx-1" || m.Header.Get(natsutil.TraceParentHeader) != testTP {
		t.Fatalf("status = %v (headers %v)", st, m.Header)
	}
	request(t, nc, "sm.v1.status", mustMarshal(t, &smv1.StatusRequest{Id: "nope"}), st)
	if st.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("status(nope) = %v", st)
	}
	request(t, nc, "sm.v1.status", mustMarshal(t, &smv1.StatusRequest{Id: "gone"}), st)
	if e := st.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_NOT_LEADER || e.GetLeaderId() != "c3" {
		t.Fatalf("status(gone) = %v", st)
	}

	lr := new(smv1.LeaseResponse)
	for _, op := range []smv1.LeaseOp{smv1.LeaseOp_LEASE_OP_RENEW, smv1.LeaseOp_LEASE_OP_RELEASE} {
		request(t, nc, "sm.v1.lease", mustMarshal(t, &smv1.LeaseRequest{Txid: "tx-1", Op: op}), lr)
		if lr.GetError() != nil {
			t.Fatalf("%s = %v", op, lr)
		}
	}
	request(t, nc, "sm.v1.lease", mustMarshal(t, &smv1.LeaseRequest{Txid: "released", Op: smv1.LeaseOp_LEASE_OP_RELEASE}), lr)
	if lr.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_CONFLICT {
		t.Fatalf("release(released) = %v", lr)
	}
	if node.Calls("Renew") != 1 || node.Calls("Release") != 2 {
		t.Fatalf("calls %v", node.calls)
	}

	rr := new(smv1.RegisterShardResponse)
	request(t, nc, "sm.v1.shard.register", mustMarshal(t, &smv1.ShardInfo{ShardId: "s1", Region: "eu"}), rr)
	if rr.GetError() != nil {
		t.Fatalf("register = %v", rr)
	}
	request(t, nc, "sm.v1.shard.register", mustMarshal(t, &smv1.ShardInfo{ShardId: "s1"}), rr)
	if e := rr.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != "region" {
		t.Fatalf("register without region = %v", rr)
	}
	stats := srv.Stats()
	if stats.StatusRequests != 3 || stats.LeaseRequests != 3 || stats.RegisterRequests != 2 ||
		stats.ErrorCodes[smv1.ErrorCode_ERROR_CODE_NOT_FOUND] != 1 || stats.ErrorCodes[smv1.ErrorCode_ERROR_CODE_CONFLICT] != 1 {
		t.Fatalf("stats %+v", stats)
	}
}

// Undecodable or incomplete requests are answered INVALID, counted, and never reach the
// node; a request without a reply subject is dropped.
func TestMalformedRequests(t *testing.T) {
	s := natstest.Start(t)
	nc := connect(t, s)
	node := newFakeNode()
	srv := newServer(t, s, node, nil)
	lead(t, srv, 1)
	for _, c := range []struct {
		subject string
		data    []byte
		field   string
		resp    interface {
			proto.Message
			GetError() *smv1.ApiError
		}
	}{
		{"sm.v1.status", garbage, "request", new(smv1.StatusResponse)},
		{"sm.v1.status", nil, "id", new(smv1.StatusResponse)},
		{"sm.v1.lease", garbage, "request", new(smv1.LeaseResponse)},
		{"sm.v1.lease", mustMarshal(t, &smv1.LeaseRequest{Op: smv1.LeaseOp_LEASE_OP_RENEW}), "txid", new(smv1.LeaseResponse)},
		{"sm.v1.lease", mustMarshal(t, &smv1.LeaseRequest{Txid: "t"}), "op", new(smv1.LeaseResponse)},
		{"sm.v1.shard.register", garbage, "request", new(smv1.RegisterShardResponse)},
		{"sm.v1.shard.register", nil, "shard_id", new(smv1.RegisterShardResponse)},
		{"sm.v1.shard.register", mustMarshal(t, &smv1.ShardInfo{ShardId: "s.*"}), "shard_id", new(smv1.RegisterShardResponse)},
	} {
		request(t, nc, c.subject, c.data, c.resp)
		if e := c.resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() != c.field {
			t.Errorf("%s %x: %v, want INVALID %s", c.subject, c.data, c.resp, c.field)
		}
	}
	if err := nc.Publish("sm.v1.status", mustMarshal(t, &smv1.StatusRequest{Id: "x"})); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the request without a reply to be dropped", func() error {
		if n := srv.Stats().NoReply; n != 1 {
			return fmt.Errorf("%d dropped without reply", n)
		}
		return nil
	})
	st := srv.Stats()
	if st.Malformed != 3 || st.InvalidRequests != 5 {
		t.Fatalf("stats %+v", st)
	}
	for _, m := range []string{"Status", "Renew", "Release", "RegisterShard"} {
		if n := node.Calls(m); n != 0 {
			t.Errorf("%s reached the node %d times", m, n)
		}
	}
}
