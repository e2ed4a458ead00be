package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// bareNATS is a NATS server with JetStream and no coordinator: tests play the leader.
func bareNATS(tb testing.TB) (*server.Server, *nats.Conn) {
	tb.Helper()
	s := natstest.Start(tb)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return s, nc
}

// respond serves subject on nc with answer(call number, request).
func respond(tb testing.TB, nc *nats.Conn, subject string, answer func(n int, m *nats.Msg) proto.Message) {
	tb.Helper()
	var calls atomic.Int64
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		data, _ := proto.Marshal(answer(int(calls.Add(1)), m))
		_ = m.Respond(data)
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
}

func apiErr(code smv1.ErrorCode) *smv1.ApiError {
	return &smv1.ApiError{Code: code, Message: code.String()}
}

func TestNewValidates(t *testing.T) {
	_, nc := bareNATS(t)
	for _, cfg := range []client.Config{{}, {Conn: nc, Prefix: "a..b"}, {Conn: nc, AttemptTimeout: -1}} {
		if c, err := client.New(cfg); err == nil {
			_ = c.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		nil:                                  false,
		client.ErrInvalid:                    false,
		&client.InvalidError{Field: "teams"}: false,
		client.ErrNotFound:                   false,
		client.ErrConflict:                   false,
		client.ErrClosed:                     false,
		client.ErrUnavailable:                true,
		&client.OutcomeUnknownError{ProposalID: "p", Cause: context.DeadlineExceeded}: true,
		context.Canceled:             true,
		errors.New("something else"): false,
	} {
		if got := client.IsRetryable(err); got != want {
			t.Errorf("IsRetryable(%v) = %v", err, got)
		}
	}
}

// With nobody serving, reads end in ErrUnavailable and writes that certainly reached no
// leader too; Propose ends in ErrOutcomeUnknown; trivially bad requests fail at once.
func TestNoLeader(t *testing.T) {
	_, nc := bareNATS(t)
	cl := newClient(t, nc, client.Config{AttemptTimeout: 50 * time.Millisecond, StatusTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := cl.Status(ctx, "tx"); !errors.Is(err, client.ErrUnavailable) || !client.IsRetryable(err) {
		t.Errorf("Status = %v", err)
	}
	if err := cl.Renew(ctx, "tx"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Renew = %v", err)
	}
	_, err := cl.Propose(ctx, proposal("nobody")) // no stream either: the publish fails
	var u *client.OutcomeUnknownError
	if !errors.As(err, &u) || u.ProposalID != "nobody" {
		t.Errorf("Propose = %v", err)
	}
	bg := context.Background()
	for name, err := range map[string]error{
		"nil proposal": func() error { _, err := cl.Propose(bg, nil); return err }(),
		"no id":        func() error { _, err := cl.Propose(bg, &smv1.Proposal{}); return err }(),
		"status":       func() error { _, err := cl.Status(bg, ""); return err }(),
		"renew":        cl.Renew(bg, ""),
		"release":      cl.Release(bg, ""),
		"register":     cl.RegisterShard(bg, &smv1.ShardInfo{}),
	} {
		if !errors.Is(err, client.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Answers that say "ask again" (NOT_LEADER, UNAVAILABLE) are retried until a definite
// one comes, which is returned typed.
func TestRequestRetriesUntilDefinite(t *testing.T) {
	_, nc := bareNATS(t)
	respond(t, nc, "sm.v1.status", func(n int, _ *nats.Msg) proto.Message {
		switch n {
		case 1:
			return &smv1.StatusResponse{Result: &smv1.StatusResponse_Error{Error: apiErr(smv1.ErrorCode_ERROR_CODE_NOT_LEADER)}}
		case 2:
			return &smv1.StatusResponse{} // neither txn nor error
		case 3:
			return &smv1.StatusResponse{Result: &smv1.StatusResponse_Error{Error: apiErr(smv1.ErrorCode_ERROR_CODE_UNAVAILABLE)}}
		}
		return &smv1.StatusResponse{Result: &smv1.StatusResponse_Txn{Txn: &smv1.TxnRecord{Txid: "tx"}}}
	})
	cl := newClient(t, nc, client.Config{RetryBackoff: time.Millisecond})
	rec, err := cl.Status(ctxFor(t, 5*time.Second), "tx")
	if err != nil || rec.GetTxid() != "tx" {
		t.Fatalf("Status = %v, %v", rec, err)
	}
}

// A Release whose first attempt's fate is unknown and whose retry meets CONFLICT
// succeeds if the match is released; a Renew that never got a definite answer is
// OUTCOME_UNKNOWN, not a failure.
func TestUncertainLeaseCalls(t *testing.T) {
	_, nc := bareNATS(t)
	respond(t, nc, "sm.v1.lease", func(n int, m *nats.Msg) proto.Message {
		req := new(smv1.LeaseRequest)
		_ = proto.Unmarshal(m.Data, req)
		if req.GetOp() == smv1.LeaseOp_LEASE_OP_RENEW {
			return &smv1.LeaseResponse{Error: apiErr(smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN)}
		}
		if n == 1 {
			return &smv1.LeaseResponse{Error: apiErr(smv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN)}
		}
		return &smv1.LeaseResponse{Error: apiErr(smv1.ErrorCode_ERROR_CODE_CONFLICT)}
	})
	respond(t, nc, "sm.v1.status", func(int, *nats.Msg) proto.Message {
		return &smv1.StatusResponse{Result: &smv1.StatusResponse_Txn{Txn: &smv1.TxnRecord{Txid: "tx", LeaseEnd: "released"}}}
	})
	cl := newClient(t, nc, client.Config{RetryBackoff: time.Millisecond})
	if err := cl.Release(ctxFor(t, 5*time.Second), "tx"); err != nil {
		t.Fatalf("Release = %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := cl.Renew(short, "tx")
	if !errors.Is(err, client.ErrOutcomeUnknown) || !client.IsRetryable(err) {
		t.Fatalf("Renew = %v", err)
	}
}
