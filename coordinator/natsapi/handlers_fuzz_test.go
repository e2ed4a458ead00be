package natsapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// recNode records what reaches the node.
type recNode struct {
	mu    sync.Mutex
	calls []string // method and argument
}

func (r *recNode) rec(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recNode) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *recNode) Propose(_ context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	r.rec("Propose " + p.GetProposalId())
	return &smv1.Decision{}, nil
}
func (r *recNode) Status(_ context.Context, id string) (*smv1.TxnRecord, error) {
	r.rec("Status " + id)
	return &smv1.TxnRecord{Txid: id}, nil
}
func (r *recNode) Renew(_ context.Context, txid string) error   { r.rec("Renew " + txid); return nil }
func (r *recNode) Release(_ context.Context, txid string) error { r.rec("Release " + txid); return nil }
func (r *recNode) RegisterShard(_ context.Context, s *smv1.ShardInfo) error {
	r.rec("RegisterShard " + s.GetShardId())
	return nil
}

// FuzzRequestHandlers feeds arbitrary bytes to the status, lease and register
// handlers (sel picks one). Each answers exactly once with its response type; what
// does not decode or lacks a required field is answered INVALID and never reaches the
// node; what reaches the node carries a non-empty id, a lease op, or a shard id that
// is a valid subject token.
func FuzzRequestHandlers(f *testing.F) {
	for _, m := range []proto.Message{
		&smv1.StatusRequest{Id: "p1"},
		&smv1.LeaseRequest{Txid: "tx-1-0", Op: smv1.LeaseOp_LEASE_OP_RENEW},
		&smv1.LeaseRequest{Txid: "tx-1-0", Op: smv1.LeaseOp_LEASE_OP_RELEASE},
		&smv1.ShardInfo{ShardId: "s1", Region: "eu", Capacity: 100, Labels: map[string]string{"a": "b"}, ProtocolVersion: 1},
		&smv1.ShardInfo{ShardId: "s1.cmd"},
	} {
		b, _ := proto.Marshal(m)
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
	node := &recNode{}
	s, err := New(Config{Node: node, Conn: nc, SkipEnsureStreams: true, MaxRequestBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		var (
			handle func(context.Context, *nats.Msg)
			resp   interface {
				proto.Message
				GetError() *smv1.ApiError
			}
		)
		switch sel % 3 {
		case 0:
			handle, resp = s.handleStatus, &smv1.StatusResponse{}
		case 1:
			handle, resp = s.handleLease, &smv1.LeaseResponse{}
		default:
			handle, resp = s.handleRegister, &smv1.RegisterShardResponse{}
		}
		handle(context.Background(), &nats.Msg{Subject: "fuzz", Reply: inbox, Data: data})
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if err := proto.Unmarshal(m.Data, resp); err != nil {
			t.Fatalf("answer does not decode as %T: %v", resp, err)
		}
		calls := node.take()
		if len(calls) > 1 {
			t.Fatalf("one request made %d node calls: %v", len(calls), calls)
		}
		if len(calls) == 0 {
			if e := resp.GetError(); e.GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID || e.GetField() == "" {
				t.Fatalf("refused without a typed INVALID naming a field: %v", resp)
			}
			return
		}
		if len(data) > s.cfg.MaxRequestBytes {
			t.Fatalf("%d bytes over the limit reached the node: %v", len(data), calls)
		}
		switch sel % 3 {
		case 0, 1:
			if calls[0] == "Status " || calls[0] == "Renew " || calls[0] == "Release " {
				t.Fatalf("node called without an id: %q", calls[0])
			}
		default:
			info := new(smv1.ShardInfo)
			_ = proto.Unmarshal(data, info)
			if err := natsutil.ValidateShardID(info.GetShardId()); err != nil {
				t.Fatalf("shard id %q reached the node: %v", info.GetShardId(), err)
			}
		}
	})
}
