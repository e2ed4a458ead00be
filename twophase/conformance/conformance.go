package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// MinPlayers is how many distinct players Config.Players must name: each check uses
// players no other check touched.
const MinPlayers = 8

// ErrConfig is wrapped by Run's error for an invalid Config.
var ErrConfig = errors.New("conformance: invalid config")

// Config says which shard to check and how to reach it.
type Config struct {
	// Conn reaches the NATS server the shard uses. Run does not close it.
	Conn *nats.Conn
	// Prefix of the subjects (natsutil.DefaultPrefix if empty).
	Prefix string
	// ShardID is the shard under test.
	ShardID string
	// Players are MinPlayers or more players of the shard that it accepts into a
	// match (idle, online) for as long as the run lasts.
	Players []string
	// ReplyTimeout bounds the wait for each expected vote or ack (10 s).
	ReplyTimeout time.Duration
	// Silence is how long the harness listens to be sure no reply comes (2 s).
	Silence time.Duration
	// RegisterTimeout bounds the wait for the shard's registration (60 s): start the
	// shard within it.
	RegisterTimeout time.Duration
	// Signer signs every command, for a shard that requires signatures.
	Signer *cmdsig.Signer
	// Restart, if set, restarts the shard (it may return before the shard is back):
	// the recovery check runs only with it.
	Restart func(ctx context.Context) error
	// Logger receives the run's progress. Nil discards.
	Logger *slog.Logger
}

// Status is a check's verdict.
type Status string

// Verdicts.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one check's verdict.
type Result struct {
	Name   string `json:"name"`
	Rule   string `json:"rule"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is the verdict on one shard.
type Report struct {
	Shard   string   `json:"shard"`
	Results []Result `json:"results"`
}

// Passed reports whether no check failed.
func (r Report) Passed() bool {
	for _, x := range r.Results {
		if x.Status == Fail {
			return false
		}
	}
	return true
}

// Run checks the shard and returns the report. Its error is for a run that could not
// start (bad Config, no NATS, no JetStream); a shard that breaks a rule is a FAIL in
// the report, not an error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	h, err := newHarness(ctx, cfg)
	if err != nil {
		return Report{}, err
	}
	defer h.close()
	rep := Report{Shard: cfg.ShardID}
	for _, c := range checks() {
		if ctx.Err() != nil {
			break
		}
		r := Result{Name: c.name, Rule: c.rule, Status: Pass}
		switch err := c.fn(ctx, h); {
		case errors.Is(err, errSkip):
			r.Status, r.Detail = Skip, err.Error()
		case err != nil:
			r.Status, r.Detail = Fail, err.Error()
		}
		h.log.Info("check", "name", r.Name, "status", r.Status, "detail", r.Detail)
		rep.Results = append(rep.Results, r)
		if c.name == "register" && r.Status == Fail {
			break // nothing else can be checked against a shard that never started
		}
	}
	return rep, ctx.Err()
}

// errSkip marks a check that could not run (no Restart hook, say).
var errSkip = errors.New("skipped")

// harness is the coordinator the shard talks to during a run.
type harness struct {
	cfg              Config
	log              *slog.Logger
	js               jetstream.JetStream
	subj             natsutil.Subjects
	cmdSubj          string
	voteSubj, ackSub string
	subs             []*nats.Subscription
	run              string // this run's id, in every txid
	term, token      uint64 // this run's base term and fencing token
	sends            int

	mu        sync.Mutex
	changed   chan struct{}
	votes     map[string][]*smv1.Vote
	acks      map[string][]*smv1.Ack
	stray     []string // replies that arrived on the wrong subject or undecodable
	registers []*smv1.ShardInfo
	asked     map[string]int // status queries per id
	outcomes  map[string]*smv1.TxnRecord
}

func newHarness(ctx context.Context, cfg Config) (*harness, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case cfg.Conn == nil:
		return nil, bad("Conn is nil")
	case len(cfg.Players) < MinPlayers:
		return nil, bad("%d players given, at least %d needed", len(cfg.Players), MinPlayers)
	case cfg.ReplyTimeout < 0 || cfg.Silence < 0 || cfg.RegisterTimeout < 0:
		return nil, bad("timeouts must be >= 0")
	}
	seen := map[string]bool{}
	for _, p := range cfg.Players {
		if p == "" || seen[p] {
			return nil, bad("player %q is empty or named twice", p)
		}
		seen[p] = true
	}
	if err := natsutil.ValidateShardID(cfg.ShardID); err != nil {
		return nil, bad("ShardID: %v", err)
	}
	subj, err := natsutil.NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, bad("Prefix: %v", err)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.ReplyTimeout, 10*time.Second)
	def(&cfg.Silence, 2*time.Second)
	def(&cfg.RegisterTimeout, time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	h := &harness{cfg: cfg, log: cfg.Logger.With("shard", cfg.ShardID), subj: subj, changed: make(chan struct{}),
		run: strconv.FormatInt(now.UnixNano(), 36), term: uint64(now.Unix()), token: uint64(now.UnixNano()) >> 4,
		votes: map[string][]*smv1.Vote{}, acks: map[string][]*smv1.Ack{}, asked: map[string]int{}, outcomes: map[string]*smv1.TxnRecord{}}
	h.cmdSubj, _ = subj.ShardCmd(cfg.ShardID)
	h.voteSubj, _ = subj.CoordVote(cfg.ShardID)
	h.ackSub, _ = subj.CoordAck(cfg.ShardID)
	if h.js, err = jetstream.New(cfg.Conn); err != nil {
		return nil, fmt.Errorf("conformance: jetstream: %w", err)
	}
	if err := h.ensureStreams(ctx); err != nil {
		return nil, err
	}
	if err := h.subscribe(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// ensureStreams creates the streams a coordinator would, leaving existing ones alone.
func (h *harness) ensureStreams(ctx context.Context) error {
	if _, err := h.js.Stream(ctx, h.subj.Streams().Cmd); err == nil {
		return nil
	}
	if err := natsutil.EnsureStreams(ctx, h.js, natsutil.StreamConfig{Prefix: h.cfg.Prefix}); err != nil {
		return fmt.Errorf("conformance: %w", err)
	}
	return nil
}

// subscribe listens where a coordinator listens: the shard's votes and acks (and every
// other shard's, to catch a reply on the wrong subject), its registration and status
// queries.
func (h *harness) subscribe() error {
	reg, _ := h.subj.ShardRegister(h.cfg.ShardID)
	for subject, fn := range map[string]nats.MsgHandler{
		h.subj.CoordVoteAll(): h.onReply, h.subj.CoordAckAll(): h.onReply,
		reg: h.onRegister, h.subj.Register(): h.onRegister, h.subj.Status(): h.onStatus,
	} {
		s, err := h.cfg.Conn.Subscribe(subject, fn)
		if err != nil {
			return fmt.Errorf("conformance: subscribe %s: %w", subject, err)
		}
		h.subs = append(h.subs, s)
	}
	return h.cfg.Conn.Flush()
}

func (h *harness) close() {
	for _, s := range h.subs {
		_ = s.Unsubscribe()
	}
}

// notify wakes every waiter; call with mu held.
func (h *harness) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *harness) onReply(m *nats.Msg) {
	r := new(smv1.ShardReply)
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notify()
	if err := proto.Unmarshal(m.Data, r); err != nil {
		h.stray = append(h.stray, fmt.Sprintf("undecodable reply on %s: %v", m.Subject, err))
		return
	}
	switch {
	case r.GetVote() != nil && m.Subject == h.voteSubj:
		h.votes[r.GetVote().GetTxid()] = append(h.votes[r.GetVote().GetTxid()], r.GetVote())
	case r.GetAck() != nil && m.Subject == h.ackSub:
		h.acks[r.GetAck().GetTxid()] = append(h.acks[r.GetAck().GetTxid()], r.GetAck())
	default:
		h.stray = append(h.stray, fmt.Sprintf("reply %v on %s", r, m.Subject))
	}
}

func (h *harness) onRegister(m *nats.Msg) {
	info := new(smv1.ShardInfo)
	resp := &smv1.RegisterShardResponse{}
	if err := proto.Unmarshal(m.Data, info); err != nil {
		resp.Error = &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_INVALID, Field: "request", Message: err.Error()}
	} else {
		h.mu.Lock()
		h.registers = append(h.registers, info)
		h.notify()
		h.mu.Unlock()
	}
	if b, err := proto.Marshal(resp); err == nil {
		_ = m.Respond(b)
	}
}

func (h *harness) onStatus(m *nats.Msg) {
	req := new(smv1.StatusRequest)
	resp := &smv1.StatusResponse{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		resp.Result = &smv1.StatusResponse_Error{Error: &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_INVALID, Field: "request"}}
	} else {
		h.mu.Lock()
		h.asked[req.GetId()]++
		rec, ok := h.outcomes[req.GetId()]
		h.notify()
		h.mu.Unlock()
		if ok {
			resp.Result = &smv1.StatusResponse_Txn{Txn: rec}
		} else {
			resp.Result = &smv1.StatusResponse_Error{Error: &smv1.ApiError{Code: smv1.ErrorCode_ERROR_CODE_NOT_FOUND, Message: "unknown to the conformance harness"}}
		}
	}
	if b, err := proto.Marshal(resp); err == nil {
		_ = m.Respond(b)
	}
}

// waitFor polls cond (under mu) until it holds or d passes.
func (h *harness) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		h.mu.Lock()
		ok, ch := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			return cond()
		case <-ctx.Done():
			return false
		}
	}
}

// send publishes cmd with the headers a coordinator sets.
func (h *harness) send(ctx context.Context, cmd *smv1.ShardCommand, term uint64) error {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return err
	}
	return h.publish(ctx, data, term)
}

// publish puts data on the shard's command subject as a new stream message: every
// send has its own Nats-Msg-Id, as a coordinator's resend in a later epoch does.
func (h *harness) publish(ctx context.Context, data []byte, term uint64) error {
	h.sends++
	msg := &nats.Msg{Subject: h.cmdSubj, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("conformance/%s/%s/%d", h.cfg.ShardID, h.run, h.sends))
	msg.Header.Set("Sm-Term", strconv.FormatUint(term, 10))
	if h.cfg.Signer != nil {
		h.cfg.Signer.SignHeader(msg.Header, h.cmdSubj, data)
	}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ReplyTimeout)
	defer cancel()
	if _, err := h.js.PublishMsg(pctx, msg); err != nil {
		return fmt.Errorf("publish to %s: %w", h.cmdSubj, err)
	}
	return nil
}
