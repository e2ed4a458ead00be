package natsapi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

const testTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func connect(tb testing.TB, s *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// fakeNode is a natsapi.Node whose answers the test chooses. Unset functions answer a
// committed decision (Propose), a PREPARING record (Status) or success.
type fakeNode struct {
	propose  func(ctx context.Context, p *smv1.Proposal, call int) (*smv1.Decision, error)
	status   func(ctx context.Context, id string) (*smv1.TxnRecord, error)
	lease    func(ctx context.Context, op, txid string) error
	register func(ctx context.Context, s *smv1.ShardInfo) error

	mu    sync.Mutex
	calls map[string]int // method → calls
}

func newFakeNode() *fakeNode { return &fakeNode{calls: map[string]int{}} }

func (f *fakeNode) count(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[m]++
	return f.calls[m]
}

// Calls returns how often method was called.
func (f *fakeNode) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeNode) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	n := f.count("Propose")
	if f.propose != nil {
		return f.propose(ctx, p, n)
	}
	return committed(p), nil
}

func committed(p *smv1.Proposal) *smv1.Decision {
	return &smv1.Decision{Txid: "tx-" + p.GetProposalId(), ProposalId: p.GetProposalId(), Outcome: smv1.Outcome_OUTCOME_COMMITTED}
}

func (f *fakeNode) Status(ctx context.Context, id string) (*smv1.TxnRecord, error) {
	f.count("Status")
	if f.status != nil {
		return f.status(ctx, id)
	}
	return &smv1.TxnRecord{Txid: id, State: smv1.TxnState_TXN_STATE_PREPARING}, nil
}

func (f *fakeNode) Renew(ctx context.Context, txid string) error {
	f.count("Renew")
	if f.lease != nil {
		return f.lease(ctx, "renew", txid)
	}
	return nil
}

func (f *fakeNode) Release(ctx context.Context, txid string) error {
	f.count("Release")
	if f.lease != nil {
		return f.lease(ctx, "release", txid)
	}
	return nil
}

func (f *fakeNode) RegisterShard(ctx context.Context, s *smv1.ShardInfo) error {
	f.count("RegisterShard")
	if f.register != nil {
		return f.register(ctx, s)
	}
	return nil
}

// newServer starts a Server for node on its own connection; it is closed at cleanup.
func newServer(tb testing.TB, s *server.Server, node natsapi.Node, tweak func(*natsapi.Config)) *natsapi.Server {
	tb.Helper()
	cfg := natsapi.Config{Node: node, Conn: connect(tb, s), AckWait: time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := natsapi.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return srv
}

func lead(tb testing.TB, srv *natsapi.Server, term uint64) {
	tb.Helper()
	srv.Leading(true, term)
	testutil.WaitFor(tb, 5*time.Second, "the server to serve", func() error {
		if !srv.Serving() {
			return context.DeadlineExceeded
		}
		return nil
	})
}

// inbox subscribes a fresh inbox and returns it with its subscription.
func inbox(tb testing.TB, nc *nats.Conn) (string, *nats.Subscription) {
	tb.Helper()
	subj := nc.NewInbox()
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return subj, sub
}

// publishProposal publishes raw proposal bytes to the intake stream as a client
// would, with the reply inbox in Sm-Reply (none if reply is empty).
func publishProposal(tb testing.TB, nc *nats.Conn, msgID string, data []byte, reply string) {
	tb.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	h := nats.Header{natsutil.TraceParentHeader: {testTP}}
	if reply != "" {
		h.Set(natsapi.HeaderReply, reply)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "sm.v1.req.propose", Data: data, Header: h}, jetstream.WithMsgID(msgID)); err != nil {
		tb.Fatal(err)
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// nextResponse waits for the next ProposeResponse on sub.
func nextResponse(tb testing.TB, sub *nats.Subscription) (*smv1.ProposeResponse, *nats.Msg) {
	tb.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	resp := new(smv1.ProposeResponse)
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		tb.Fatal(err)
	}
	return resp, m
}

// intakeInfo returns the intake consumer's state.
func intakeInfo(tb testing.TB, nc *nats.Conn) *jetstream.ConsumerInfo {
	tb.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, "SM_REQ", natsapi.DefaultConsumer)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

// garbage is not a valid protobuf encoding of anything: a length-delimited field 1
// whose length runs past the end.
var garbage = []byte{0x0a, 0xff, 0x01}
