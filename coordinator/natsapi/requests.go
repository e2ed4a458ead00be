package natsapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// invalid is the ApiError for a request that could not be decoded or lacks a field.
func invalid(field, msg string) *smv1.ApiError {
	return &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_INVALID, Field: field, Message: msg}
}

// handleStatus answers a StatusRequest from the node's linearizable read.
func (s *Server) handleStatus(ctx context.Context, m *nats.Msg) {
	s.stats.statusRequests.Add(1)
	req := new(smv1.StatusRequest)
	var resp *smv1.StatusResponse
	switch err := s.decode(m, req); {
	case err != nil:
		s.malformed("status request", m, err)
		resp = &smv1.StatusResponse{Result: &smv1.StatusResponse_Error{Error: invalid("request", "undecodable StatusRequest: "+err.Error())}}
	case req.GetId() == "":
		s.stats.invalidRequests.Add(1)
		resp = &smv1.StatusResponse{Result: &smv1.StatusResponse_Error{Error: invalid("id", "empty")}}
	default:
		rec, err := s.cfg.Node.Status(ctx, req.GetId())
		if err != nil {
			resp = &smv1.StatusResponse{Result: &smv1.StatusResponse_Error{Error: s.apiError(err)}}
		} else {
			resp = &smv1.StatusResponse{Result: &smv1.StatusResponse_Txn{Txn: rec}}
		}
	}
	s.respond(ctx, m.Reply, resp)
}

// handleLease renews or releases a committed match.
func (s *Server) handleLease(ctx context.Context, m *nats.Msg) {
	s.stats.leaseRequests.Add(1)
	req := new(smv1.LeaseRequest)
	resp := new(smv1.LeaseResponse)
	switch err := s.decode(m, req); {
	case err != nil:
		s.malformed("lease request", m, err)
		resp.Error = invalid("request", "undecodable LeaseRequest: "+err.Error())
	case req.GetTxid() == "":
		s.stats.invalidRequests.Add(1)
		resp.Error = invalid("txid", "empty")
	case req.GetOp() == smv1.LeaseOp_LEASE_OP_RENEW:
		resp.Error = s.apiError(s.cfg.Node.Renew(ctx, req.GetTxid()))
	case req.GetOp() == smv1.LeaseOp_LEASE_OP_RELEASE:
		resp.Error = s.apiError(s.cfg.Node.Release(ctx, req.GetTxid()))
	default:
		s.stats.invalidRequests.Add(1)
		resp.Error = invalid("op", "must be LEASE_OP_RENEW or LEASE_OP_RELEASE, not "+req.GetOp().String())
	}
	s.respond(ctx, m.Reply, resp)
}

// handleRegister adds or updates a shard in the registry. On a shard's own subject,
// <p>.v1.shard.<shard>.register, the ShardInfo must name that shard: NATS permissions
// decide who may publish there, so a mismatch is someone registering (or draining)
// another shard, refused as INVALID before it reaches the log. The generic
// <p>.v1.shard.register takes any shard id (deployments without NATS permissions).
func (s *Server) handleRegister(ctx context.Context, m *nats.Msg) {
	s.stats.registerRequests.Add(1)
	info := new(smv1.ShardInfo)
	resp := new(smv1.RegisterShardResponse)
	switch err := s.decode(m, info); {
	case err != nil:
		s.malformed("shard registration", m, err)
		resp.Error = invalid("request", "undecodable ShardInfo: "+err.Error())
	default:
		// The shard id becomes a subject token: refuse what would let it speak for
		// another shard, before it reaches the log.
		if err := natsutil.ValidateShardID(info.GetShardId()); err != nil {
			s.stats.invalidRequests.Add(1)
			resp.Error = invalid("shard_id", err.Error())
			break
		}
		if m.Subject != s.subj.Register() {
			own, err := s.subj.ParseShardRegister(m.Subject)
			if err != nil || own != info.GetShardId() {
				s.stats.invalidRequests.Add(1)
				s.log.Warn("shard registration for another shard's subject refused", "subject", m.Subject, "shard_id", info.GetShardId())
				resp.Error = invalid("shard_id", fmt.Sprintf("%q does not match the subject %s: a shard registers only itself", info.GetShardId(), m.Subject))
				break
			}
		}
		resp.Error = s.apiError(s.cfg.Node.RegisterShard(ctx, info))
	}
	s.respond(ctx, m.Reply, resp)
}

// apiError translates err for the wire and counts it by code.
func (s *Server) apiError(err error) *smv1.ApiError {
	e := coordinator.APIError(err)
	if e != nil {
		s.stats.countCode(e.GetCode())
	}
	return e
}

// tooBigError is decode's error for a request over MaxRequestBytes.
type tooBigError struct{ n, limit int }

func (e *tooBigError) Error() string {
	return fmt.Sprintf("not read: %d bytes, over the limit of %d", e.n, e.limit)
}

// decode unmarshals a core request into msg, refusing one over MaxRequestBytes
// without reading it.
func (s *Server) decode(m *nats.Msg, msg proto.Message) error {
	if n := len(m.Data); n > s.cfg.MaxRequestBytes {
		return &tooBigError{n: n, limit: s.cfg.MaxRequestBytes}
	}
	return proto.Unmarshal(m.Data, msg)
}

func (s *Server) malformed(what string, m *nats.Msg, err error) {
	if tb := (*tooBigError)(nil); errors.As(err, &tb) {
		s.stats.oversized.Add(1)
		s.log.Warn("oversized "+what, "subject", m.Subject, "bytes", len(m.Data), "limit", tb.limit)
		return
	}
	s.stats.malformed.Add(1)
	s.log.Warn("malformed "+what, "subject", m.Subject, "bytes", len(m.Data), "err", err)
}

// respond publishes msg to subject with ctx's trace context. A failed publish is counted;
// the requester retries.
func (s *Server) respond(ctx context.Context, subject string, msg proto.Message) {
	data, err := proto.Marshal(msg)
	if err != nil {
		s.stats.replyErrors.Add(1)
		s.log.Error("cannot encode reply", "subject", subject, "err", err)
		return
	}
	out := &nats.Msg{Subject: subject, Data: data}
	if trace.SpanContextFromContext(ctx).IsValid() {
		out.Header = nats.Header{}
		natsutil.InjectTrace(ctx, out.Header)
	}
	if err := s.cfg.Conn.PublishMsg(out); err != nil {
		s.stats.replyErrors.Add(1)
		s.log.Debug("reply not sent", "subject", subject, "err", err)
		return
	}
	s.stats.replies.Add(1)
}
