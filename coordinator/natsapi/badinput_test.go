package natsapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestBadInputTable sends bad input to every entry point of the NATS API of a real
// (one-node) coordinator: proposals through the intake stream, status, lease and
// shard registration requests. Each row gets its typed answer (or, where nobody may
// be answered, is dropped and counted), and the replicated state is the same after
// it as before. The votes and acks shards send (twophase/natstransport) have their
// own table (malformed_test.go there) and fuzz target (FuzzCoordinatorReply).
func TestBadInputTable(t *testing.T) {
	c := natsapitest.Start(t, natsapitest.Options{Nodes: 1,
		Coordinator: func(_ string, cfg *coordinator.Config) { cfg.Limits.MaxPlayers = 4 },
		API: func(_ string, cfg *natsapi.Config) {
			cfg.MaxProposalBytes = 4096
			cfg.ProposerRate, cfg.ProposerBurst = 1e-6, 2 // two proposals per identity, then none
		}})
	nc := c.Connect()
	srv, node := c.API(0), c.Node(0)
	subj := srv.Subjects()
	reply, sub := inbox(t, nc)
	seq := 0
	propose := func(subject string, data []byte, replyTo string) {
		t.Helper()
		seq++
		h := nats.Header{}
		if replyTo != "" {
			h.Set(natsapi.HeaderReply, replyTo)
		}
		publishOn(t, nc, subject, fmt.Sprintf("msg-%d", seq), data, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	match := func(id string, players ...string) *smv1.Proposal {
		var team smv1.Team
		for _, p := range players {
			pl, sh, _ := strings.Cut(p, "@")
			team.Players = append(team.Players, &smv1.Player{PlayerId: pl, ShardId: sh})
		}
		return &smv1.Proposal{ProposalId: id, Mode: "duel", Teams: []*smv1.Team{&team}, MatchTtlMs: 600_000}
	}

	// Set-up: a committed match that stays (seed) and one released (gone): the
	// anonymous subject's two tokens are spent on them.
	seed, gone := match("seed", "a@s1", "b@s2"), match("gone", "c@s1", "d@s2")
	var goneTxid string
	for _, p := range []*smv1.Proposal{seed, gone} {
		propose(subj.Propose(), mustMarshal(t, p), reply)
		r, _ := nextResponse(t, sub)
		if r.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("set-up %s: %v", p.GetProposalId(), r)
		}
		goneTxid = r.GetDecision().GetTxid()
	}
	if err := node.Release(ctx, goneTxid); err != nil {
		t.Fatal(err)
	}
	state := func() *smv1.FSMState {
		st := node.FSM().State()
		st.AppliedIndex = 0 // a refused request may still append a no-op read barrier
		return st
	}
	// Wait for the shards' acks: until then the transactions move on by themselves.
	testutil.WaitFor(t, 20*time.Second, "every set-up transaction to be acked", func() error {
		for _, tx := range node.FSM().State().GetTxns() {
			if tx.GetState() != smv1.TxnState_TXN_STATE_DONE {
				return fmt.Errorf("%s is %s", tx.GetTxid(), tx.GetState())
			}
		}
		return nil
	})
	before := state()

	tooMany := match("too-many", "p1@s1", "p2@s1", "p3@s2", "p4@s2", "p5@s1")
	reused := match("seed", "x@s1", "y@s2")
	big := match("big", "e@s1")
	big.Metadata = map[string]string{"pad": strings.Repeat("x", 5000)}
	bigReq := strings.Repeat("x", natsapi.DefaultMaxRequestBytes)
	rowSubject := func(i int) string { s, _ := subj.ProposeFrom(fmt.Sprintf("proposer-row%d", i)); return s }
	lease := natsapi.LeaseSubject(subj)

	type row struct {
		name string
		// Exactly one of proposal (published to the intake with Sm-Reply) or request
		// (a core request on subject) is set.
		proposal, data []byte
		subject        string
		replyTo        string // Sm-Reply for proposals ("" = the test's inbox)
		code           smv1.ErrorCode
		field          string
		// decision: the answer is this proposal's existing decision (a replay).
		decision string
		// silent: no answer may be sent; counter must rise instead.
		silent  bool
		counter func(natsapi.Stats) uint64
	}
	pm := func(m proto.Message) []byte { return mustMarshal(t, m) }
	rows := []row{
		{name: "proposal: undecodable", proposal: garbage, code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "proposal"},
		{name: "proposal: oversized", proposal: pm(big), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "proposal"},
		{name: "proposal: a ShardInfo's bytes", proposal: pm(&smv1.ShardInfo{ShardId: "s1", Region: "eu"}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "match_ttl_ms"}, // shard_id reads as proposal_id
		{name: "proposal: a Vote's bytes", proposal: pm(&smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: "tx-1-0", ShardId: "s1"}}}), code: smv1.ErrorCode_ERROR_CODE_INVALID},
		{name: "proposal: too many players", proposal: pm(tooMany), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "teams"},
		{name: "proposal: unknown shard", proposal: pm(match("nowhere", "e@s9")), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "shard_id"},
		// Proposals are idempotent by id: the first transaction's decision, nothing new.
		{name: "proposal: a known id with other content", proposal: pm(reused), decision: "seed"},
		{name: "proposal: over its proposer's rate", proposal: pm(match("late", "e@s1")), subject: subj.Propose(), code: smv1.ErrorCode_ERROR_CODE_RATE_LIMITED, field: "proposer"},
		{name: "proposal: Sm-Reply names a command subject", proposal: pm(match("deputy", "e@s1")), replyTo: "sm.v1.shard.s1.cmd", silent: true,
			counter: func(s natsapi.Stats) uint64 { return s.ForgedReply }},

		{name: "status: undecodable", subject: subj.Status(), data: garbage, code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "request"},
		{name: "status: oversized", subject: subj.Status(), data: pm(&smv1.StatusRequest{Id: bigReq}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "request"},
		{name: "status: empty id", subject: subj.Status(), data: nil, code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "id"},
		{name: "status: unknown id", subject: subj.Status(), data: pm(&smv1.StatusRequest{Id: "nobody"}), code: smv1.ErrorCode_ERROR_CODE_NOT_FOUND},

		{name: "lease: undecodable", subject: lease, data: garbage, code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "request"},
		{name: "lease: a ShardInfo's bytes", subject: lease, data: pm(&smv1.ShardInfo{ShardId: "tx-1-0"}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "op"},
		{name: "lease: unknown op", subject: lease, data: pm(&smv1.LeaseRequest{Txid: goneTxid, Op: 99}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "op"},
		{name: "lease: renew unknown txid", subject: lease, data: pm(&smv1.LeaseRequest{Txid: "tx-9-9", Op: smv1.LeaseOp_LEASE_OP_RENEW}), code: smv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{name: "lease: replayed release", subject: lease, data: pm(&smv1.LeaseRequest{Txid: goneTxid, Op: smv1.LeaseOp_LEASE_OP_RELEASE}), code: smv1.ErrorCode_ERROR_CODE_CONFLICT},
		{name: "lease: renew a released match", subject: lease, data: pm(&smv1.LeaseRequest{Txid: goneTxid, Op: smv1.LeaseOp_LEASE_OP_RENEW}), code: smv1.ErrorCode_ERROR_CODE_CONFLICT},

		{name: "register: undecodable", subject: subj.Register(), data: garbage, code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "request"},
		{name: "register: oversized", subject: subj.Register(), data: pm(&smv1.ShardInfo{ShardId: "s1", Region: bigReq}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "request"},
		{name: "register: a shard id that is not a token", subject: subj.Register(), data: pm(&smv1.ShardInfo{ShardId: "s1.cmd"}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "shard_id"},
		{name: "register: a StatusRequest's bytes", subject: subj.Register(), data: pm(&smv1.StatusRequest{Id: "not a shard"}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "shard_id"},
		{name: "register: unknown protocol version", subject: subj.Register(), data: pm(&smv1.ShardInfo{ShardId: "s1", ProtocolVersion: 99}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "protocol_version"},
		{name: "register: unknown state", subject: subj.Register(), data: pm(&smv1.ShardInfo{ShardId: "s1", ProtocolVersion: 1, State: 42}), code: smv1.ErrorCode_ERROR_CODE_INVALID, field: "state"},
		{name: "register: reply subject is a command subject", subject: subj.Register(), data: pm(&smv1.ShardInfo{ShardId: "s1", Region: "moved"}),
			replyTo: "sm.v1.shard.s2.cmd", silent: true, counter: func(s natsapi.Stats) uint64 { return s.ForgedReply }},
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			counted := uint64(0)
			if r.counter != nil {
				counted = r.counter(srv.Stats())
			}
			var e *smv1.ApiError
			switch {
			case r.proposal != nil:
				subject := r.subject
				if subject == "" {
					subject = rowSubject(i) // a fresh identity: not rate limited
				}
				replyTo := r.replyTo
				if replyTo == "" {
					replyTo = reply
				}
				propose(subject, r.proposal, replyTo)
				if !r.silent {
					resp, _ := nextResponse(t, sub)
					e = resp.GetError()
					if d := resp.GetDecision(); d != nil && (r.decision == "" || d.GetProposalId() != r.decision || d.GetTxid() == goneTxid) {
						t.Fatalf("decided: %v", resp)
					}
				}
			case r.silent:
				if err := nc.PublishRequest(r.subject, r.replyTo, r.data); err != nil {
					t.Fatal(err)
				}
			default:
				m, err := nc.Request(r.subject, r.data, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var resp interface {
					proto.Message
					GetError() *smv1.ApiError
				}
				switch r.subject {
				case subj.Status():
					resp = &smv1.StatusResponse{}
				case lease:
					resp = &smv1.LeaseResponse{}
				default:
					resp = &smv1.RegisterShardResponse{}
				}
				if err := proto.Unmarshal(m.Data, resp); err != nil {
					t.Fatal(err)
				}
				e = resp.GetError()
			}
			if r.silent {
				testutil.WaitFor(t, 10*time.Second, "the drop to be counted", func() error {
					if n := r.counter(srv.Stats()); n != counted+1 {
						return fmt.Errorf("counter %d, want %d", n, counted+1)
					}
					return nil
				})
			} else if r.decision != "" {
				if e != nil {
					t.Fatalf("answer %v, want %s's decision", e, r.decision)
				}
			} else if e.GetCode() != r.code || (r.field != "" && e.GetField() != r.field) {
				t.Fatalf("answer %v (field %q), want %s field %q", e, e.GetField(), r.code, r.field)
			}
			if after := state(); !proto.Equal(before, after) {
				t.Fatalf("state changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	// Nothing was answered where the forged replies pointed, and the intake settled
	// every message (acked or terminated, none left for redelivery).
	settled(t, nc)
	if st := srv.Stats(); st.Oversized < 3 || st.RateLimited != 1 || st.ForgedReply != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Negative control: the same harness does change state for a good proposal.
	propose(rowSubject(len(rows)), mustMarshal(t, match("good", "e@s1")), reply)
	if r, _ := nextResponse(t, sub); r.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED || proto.Equal(before, state()) {
		t.Fatalf("good proposal: %v; state changed: %v", r, !proto.Equal(before, state()))
	}
}
