package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Status returns the transaction named by id, a txid or a proposal id, as the leader
// holds it (a linearizable read). A transaction still PREPARING has a Decision with
// OUTCOME_UNSPECIFIED. It retries through elections until ctx ends (ErrUnavailable);
// ErrNotFound when the leader has no such transaction. It is traced as a client span,
// shardmatch.status.
func (c *Client) Status(ctx context.Context, id string) (rec *smv1.TxnRecord, err error) {
	ctx, span := startSpan(ctx, spans.Status)
	if span.IsRecording() {
		span.SetAttributes(spans.ID.String(id))
	}
	defer func() {
		if rec != nil {
			setDecision(span, rec.GetDecision())
		}
		spans.End(span, err)
	}()
	if id == "" {
		return nil, &InvalidError{Field: "id", Message: "empty"}
	}
	resp := new(smv1.StatusResponse)
	_, err = c.call(ctx, "status "+id, c.subj.Status(), &smv1.StatusRequest{Id: id}, resp, statusErr(resp))
	if err != nil {
		return nil, err
	}
	return resp.GetTxn(), nil
}

// statusOnce is one Status attempt: ErrUnavailable when no leader answered definitely.
func (c *Client) statusOnce(ctx context.Context, id string) (*smv1.TxnRecord, error) {
	resp := new(smv1.StatusResponse)
	req, _ := proto.Marshal(&smv1.StatusRequest{Id: id})
	done, _, err := c.attempt(ctx, "status "+id, c.subj.Status(), req, resp, statusErr(resp))
	switch {
	case err != nil && done:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return resp.GetTxn(), nil
}

// statusErr reads a StatusResponse's error; an answer with neither a txn nor an error
// counts as UNAVAILABLE (retried).
func statusErr(resp *smv1.StatusResponse) func() *smv1.ApiError {
	return func() *smv1.ApiError {
		if e := resp.GetError(); e != nil || resp.GetTxn() != nil {
			return e
		}
		return &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "empty status answer"}
	}
}

// Renew restarts the TTL of every lease of the committed match txid. ErrConflict if
// the match is not committed or its leases already ended; ErrNotFound if there is no
// such transaction. Renewing twice is harmless, so uncertain attempts are repeated.
// It is traced as a client span, shardmatch.renew.
func (c *Client) Renew(ctx context.Context, txid string) (err error) {
	ctx, span := startSpan(ctx, spans.Renew)
	if span.IsRecording() {
		span.SetAttributes(spans.TxID.String(txid))
	}
	defer func() { spans.End(span, err) }()
	return c.lease(ctx, txid, smv1.LeaseOp_LEASE_OP_RENEW)
}

// Release ends the committed match txid and frees its players. If an earlier attempt
// of this call may have released the match (its answer was lost), a later CONFLICT is
// checked against Status: a match released by this call is a success. It is traced as
// a client span, shardmatch.release.
func (c *Client) Release(ctx context.Context, txid string) (err error) {
	ctx, span := startSpan(ctx, spans.Release)
	if span.IsRecording() {
		span.SetAttributes(spans.TxID.String(txid))
	}
	defer func() { spans.End(span, err) }()
	err = c.lease(ctx, txid, smv1.LeaseOp_LEASE_OP_RELEASE)
	var u *uncertainConflict
	if errors.As(err, &u) {
		if rec, serr := c.Status(ctx, txid); serr == nil && rec.GetLeaseEnd() == "released" {
			return nil
		}
		return u.err
	}
	return err
}

// uncertainConflict is a CONFLICT answered after an attempt that may have applied.
type uncertainConflict struct{ err error }

func (u *uncertainConflict) Error() string { return u.err.Error() }
func (u *uncertainConflict) Unwrap() error { return u.err }

func (c *Client) lease(ctx context.Context, txid string, op smv1.LeaseOp) error {
	if txid == "" {
		return &InvalidError{Field: "txid", Message: "empty"}
	}
	resp := new(smv1.LeaseResponse)
	name := "renew " + txid
	if op == smv1.LeaseOp_LEASE_OP_RELEASE {
		name = "release " + txid
	}
	uncertain, err := c.call(ctx, name, c.leaseSubj, &smv1.LeaseRequest{Txid: txid, Op: op}, resp, resp.GetError)
	switch {
	case err == nil:
		return nil
	case uncertain && errors.Is(err, ErrConflict):
		return &uncertainConflict{err: err}
	case uncertain && errors.Is(err, ErrUnavailable):
		return &OutcomeUnknownError{TxID: txid, Cause: err}
	}
	return err
}

// RegisterShard announces a shard (or updates its metadata; an operator's drain or
// disable is kept). It is idempotent and retried until ctx ends. It is traced as a
// client span, shardmatch.register_shard.
//
// It is sent on the shard's own subject, <p>.v1.shard.<shard>.register, which NATS
// permissions let only that shard's credentials publish to and where the coordinator
// takes only that shard's ShardInfo (a mismatch is ErrInvalid). Coordinators older
// than that subject do not answer it: upgrade them before the shards.
func (c *Client) RegisterShard(ctx context.Context, s *smv1.ShardInfo) (err error) {
	ctx, span := startSpan(ctx, spans.RegisterShard)
	if span.IsRecording() {
		span.SetAttributes(spans.Shard.String(s.GetShardId()))
	}
	defer func() { spans.End(span, err) }()
	if s == nil || s.GetShardId() == "" {
		return &InvalidError{Field: "shard_id", Message: "empty"}
	}
	subject, err := c.subj.ShardRegister(s.GetShardId())
	if err != nil {
		return &InvalidError{Field: "shard_id", Message: err.Error()}
	}
	resp := new(smv1.RegisterShardResponse)
	_, err = c.call(ctx, "register shard "+s.GetShardId(), subject, s, resp, resp.GetError)
	return err
}

// call sends req to subject and decodes the answer into resp until a leader answers
// definitely or ctx ends. getErr reads resp's error field. uncertain reports that an
// attempt may have reached a leader without its answer reaching us.
func (c *Client) call(ctx context.Context, op, subject string, req, resp proto.Message,
	getErr func() *smv1.ApiError) (uncertain bool, err error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return false, &InvalidError{Field: "request", Message: "cannot encode: " + err.Error()}
	}
	backoff := c.cfg.RetryBackoff
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, c.cfg.StatusTimeout)
		done, maybe, err := c.attempt(actx, op, subject, data, resp, getErr)
		cancel()
		uncertain = uncertain || maybe
		if done {
			return uncertain, err
		}
		last = err
		if ctx.Err() != nil {
			return uncertain, fmt.Errorf("client: %s: %w: %w (last: %v)", op, ErrUnavailable, ctx.Err(), last)
		}
		c.log.Debug("no leader answered; retrying", "op", op, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return uncertain, fmt.Errorf("client: %s: %w: %w (last: %v)", op, ErrUnavailable, ctx.Err(), last)
		}
		backoff = min(2*backoff, c.cfg.RetryBackoffMax)
	}
}

// attempt is one request-reply. done is true for a definite answer (success, or an
// error the caller must see); otherwise err says why and maybe whether the request may
// have been applied.
func (c *Client) attempt(ctx context.Context, op, subject string, payload []byte, resp proto.Message,
	getErr func() *smv1.ApiError) (done, maybe bool, err error) {
	m, err := c.cfg.Conn.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: payload, Header: header(ctx)})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false, false, errors.New("no leader is serving " + subject)
	case errors.Is(err, nats.ErrConnectionClosed):
		return true, false, fmt.Errorf("client: %s: %w: %v", op, ErrClosed, err)
	case err != nil:
		return false, true, err // a timeout: a leader may have applied it
	}
	proto.Reset(resp)
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		return false, true, fmt.Errorf("undecodable answer: %w", err)
	}
	e := getErr()
	if e == nil {
		return true, false, nil
	}
	if err := apiErr(op, e); err != nil {
		return true, false, err
	}
	// NOT_LEADER: nothing was applied. OUTCOME_UNKNOWN, UNAVAILABLE: it may have been.
	maybe = e.GetCode() != smv1.ErrorCode_ERROR_CODE_NOT_LEADER
	return false, maybe, fmt.Errorf("coordinator answered %s: %s", e.GetCode(), e.GetMessage())
}
