package natsauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/natsauth"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// state is everything a forged message could change: the coordinator's replicated
// transactions and shard registry, what the streams hold and which consumers exist,
// the replies the coordinator took, and what each shard was delivered and applied.
type state struct {
	fsm       *smv1.FSMState // txns and shards only
	msgs      map[string]uint64
	consumers map[string][]string
	votes     uint64
	acks      uint64
	received  map[string]uint64
	applied   map[string][3]int64
}

func (s *stack) state(t *testing.T) state {
	t.Helper()
	full := s.node().FSM().State()
	st := state{fsm: &smv1.FSMState{Txns: full.GetTxns(), Shards: full.GetShards()},
		msgs: map[string]uint64{}, consumers: map[string][]string{}, received: map[string]uint64{}, applied: map[string][3]int64{}}
	js, err := jetstream.New(s.coord.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := s.d.Subjects().Streams()
	for _, name := range []string{names.Req, names.Cmd, names.Events} {
		str, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.msgs[name] = info.State.Msgs
		for c := range str.ConsumerNames(ctx).Name() {
			st.consumers[name] = append(st.consumers[name], c)
		}
		slices.Sort(st.consumers[name])
	}
	ts := s.tr.Stats()
	st.votes, st.acks = ts.Votes, ts.Acks+ts.Malformed+ts.ShardMismatch
	for id, sh := range s.shards {
		st.received[id] = sh.srv.Stats().Received
		st.applied[id] = [3]int64{sh.game.prepares.Load(), sh.game.commits.Load(), sh.game.aborts.Load()}
	}
	return st
}

// diff says what changed between two states ("" if nothing).
func (a state) diff(b state) string {
	switch {
	case !proto.Equal(a.fsm, b.fsm):
		return "the coordinator's transactions or shard registry"
	case !maps.Equal(a.msgs, b.msgs):
		return "stream contents"
	case !maps.EqualFunc(a.consumers, b.consumers, slices.Equal[[]string]):
		return "consumers"
	case a.votes != b.votes || a.acks != b.acks:
		return "replies taken by the coordinator"
	case !maps.Equal(a.received, b.received):
		return "commands delivered to a shard"
	case !maps.Equal(a.applied, b.applied):
		return "a shard's game state"
	}
	return ""
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPermissionsConfineEachRole runs every forbidden action of a shard, a proposer
// and an observer against a live secured deployment: each is refused by NATS with a
// permissions violation naming the subject, and nothing changed anywhere. The
// controls at the end show the same checks catch a message that does get through.
func TestPermissionsConfineEachRole(t *testing.T) {
	s := startStack(t, "s1", "s2")
	_, pcli := s.proposer("p1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if d, err := pcli.Propose(ctx, duel("warmup", "s1", "s2")); err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("positive control: decision %v, %v", d, err)
	}
	waitFor(t, 10*time.Second, "the commit acked by both shards", func() bool {
		return s.shards["s1"].game.commits.Load() == 1 && s.shards["s2"].game.commits.Load() == 1
	})
	s1, prop, obs := s.shards["s1"].conn, s.connect(natsauth.RoleProposer, "p2"), s.connect(natsauth.RoleObserver, "o1")
	subj := s.d.Subjects()
	cmdStream, evStream, reqStream := subj.Streams().Cmd, subj.Streams().Events, subj.Streams().Req
	vote2 := mustMarshal(t, &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: "forged", ShardId: "s2", Vote: smv1.VoteValue_VOTE_YES}}})
	ack2 := mustMarshal(t, &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "forged", ShardId: "s2", Outcome: smv1.Outcome_OUTCOME_COMMITTED}}})
	commit := func(shard string) []byte {
		return mustMarshal(t, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: "forged", ShardId: shard,
			Players: []*smv1.ShardPlayer{{PlayerId: "victim"}}}}})
	}
	reg2 := mustMarshal(t, &smv1.ShardInfo{ShardId: "s2", Region: "evil", ProtocolVersion: 1, State: smv1.ShardState_SHARD_STATE_DRAINING})
	consumerReq := func(name, filter string) []byte {
		b, _ := json.Marshal(map[string]any{"stream_name": cmdStream, "config": map[string]any{"durable_name": name,
			"filter_subject": filter, "ack_policy": "explicit", "deliver_policy": "all"}})
		return b
	}
	must := func(s string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	vote2Subj, ack2Subj := must(subj.CoordVote("s2")), must(subj.CoordAck("s2"))
	cmd1, cmd2 := must(subj.ShardCmd("s1")), must(subj.ShardCmd("s2"))
	reg2Subj := must(subj.ShardRegister("s2"))

	pub := func(subject string, data []byte) func(c *authConn) error {
		return func(c *authConn) error { return c.Publish(subject, data) }
	}
	jsPub := func(subject string, data []byte) func(c *authConn) error {
		return func(c *authConn) error {
			js, err := jetstream.New(c.Conn)
			if err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if _, err := js.Publish(pctx, subject, data); err == nil {
				return errors.New("the stream stored it")
			}
			return nil
		}
	}
	req := func(subject string, data []byte) func(c *authConn) error {
		return func(c *authConn) error {
			if m, err := c.Request(subject, data, 500*time.Millisecond); err == nil {
				return errors.New("answered: " + string(m.Data))
			}
			return nil
		}
	}
	sub := func(subject string) func(c *authConn) error {
		return func(c *authConn) error {
			sb, err := c.SubscribeSync(subject)
			if err != nil {
				return err
			}
			_ = c.Flush()
			if m, err := sb.NextMsg(200 * time.Millisecond); err == nil {
				return errors.New("delivered on " + m.Subject)
			}
			return nil
		}
	}
	api := "$JS.API."
	cases := []struct {
		name    string
		as      *authConn
		subject string // the subject NATS must name as denied
		do      func(*authConn) error
	}{
		{"shard votes as another shard", s1, vote2Subj, pub(vote2Subj, vote2)},
		{"shard acks as another shard", s1, ack2Subj, pub(ack2Subj, ack2)},
		{"shard forges a commit for another shard", s1, cmd2, jsPub(cmd2, commit("s2"))},
		{"shard forges a commit for itself", s1, cmd1, jsPub(cmd1, commit("s1"))},
		{"shard creates another shard's consumer", s1, api + "CONSUMER.CREATE." + cmdStream + ".shard-s2." + cmd2,
			req(api+"CONSUMER.CREATE."+cmdStream+".shard-s2."+cmd2, consumerReq("shard-s2", cmd2))},
		{"shard reads another shard's consumer", s1, api + "CONSUMER.MSG.NEXT." + cmdStream + ".shard-s2",
			req(api+"CONSUMER.MSG.NEXT."+cmdStream+".shard-s2", []byte(`{"batch":10,"expires":100000000}`))},
		{"shard looks up another shard's consumer", s1, api + "CONSUMER.INFO." + cmdStream + ".shard-s2",
			req(api+"CONSUMER.INFO."+cmdStream+".shard-s2", nil)},
		{"shard deletes another shard's consumer", s1, api + "CONSUMER.DELETE." + cmdStream + ".shard-s2",
			req(api+"CONSUMER.DELETE."+cmdStream+".shard-s2", nil)},
		{"shard acks another shard's commands", s1, "$JS.ACK." + cmdStream + ".shard-s2.1.1.1.1.0",
			pub("$JS.ACK."+cmdStream+".shard-s2.1.1.1.1.0", nil)},
		{"shard points its own consumer at another shard's commands", s1, api + "CONSUMER.CREATE." + cmdStream + ".shard-s1." + cmd2,
			req(api+"CONSUMER.CREATE."+cmdStream+".shard-s1."+cmd2, consumerReq("shard-s1", cmd2))},
		{"shard points its own consumer at every command", s1, api + "CONSUMER.CREATE." + cmdStream + ".shard-s1." + subj.ShardCmdAll(),
			req(api+"CONSUMER.CREATE."+cmdStream+".shard-s1."+subj.ShardCmdAll(), consumerReq("shard-s1", subj.ShardCmdAll()))},
		{"shard makes a second consumer on its own commands", s1, api + "CONSUMER.CREATE." + cmdStream + ".spy." + cmd1,
			req(api+"CONSUMER.CREATE."+cmdStream+".spy."+cmd1, consumerReq("spy", cmd1))},
		{"shard creates an unfiltered consumer", s1, api + "CONSUMER.CREATE." + cmdStream + ".shard-s1",
			req(api+"CONSUMER.CREATE."+cmdStream+".shard-s1", consumerReq("shard-s1", ""))},
		{"shard purges the command stream", s1, api + "STREAM.PURGE." + cmdStream, req(api+"STREAM.PURGE."+cmdStream, nil)},
		{"shard registers as another shard", s1, reg2Subj, req(reg2Subj, reg2)},
		{"shard uses the unauthenticated register subject", s1, subj.Register(), req(subj.Register(), reg2)},
		{"shard proposes", s1, must(subj.ProposeFrom("shard-s1")), jsPub(must(subj.ProposeFrom("shard-s1")), nil)},
		{"shard reads events", s1, api + "CONSUMER.CREATE." + evStream + ".peek", req(api+"CONSUMER.CREATE."+evStream+".peek", nil)},
		{"shard subscribes to another shard's inbox", s1, "_INBOX.shard-s2.>", sub("_INBOX.shard-s2.>")},
		{"shard subscribes to another shard's commands", s1, cmd2, sub(cmd2)},
		{"shard subscribes to votes", s1, subj.CoordVoteAll(), sub(subj.CoordVoteAll())},

		{"proposer forges a commit", prop, cmd1, jsPub(cmd1, commit("s1"))},
		{"proposer votes", prop, vote2Subj, pub(vote2Subj, vote2)},
		{"proposer proposes as another proposer", prop, must(subj.ProposeFrom("proposer-p1")),
			jsPub(must(subj.ProposeFrom("proposer-p1")), mustMarshal(t, duel("as-p1", "s1", "s2")))},
		{"proposer proposes anonymously", prop, subj.Propose(), jsPub(subj.Propose(), mustMarshal(t, duel("anon", "s1", "s2")))},
		{"proposer registers a shard", prop, reg2Subj, req(reg2Subj, reg2)},
		{"proposer reads the intake", prop, api + "CONSUMER.CREATE." + reqStream + ".peek", req(api+"CONSUMER.CREATE."+reqStream+".peek", nil)},
		{"proposer subscribes to another proposer's inbox", prop, "_INBOX.proposer-p1.>", sub("_INBOX.proposer-p1.>")},

		{"observer proposes", obs, must(subj.ProposeFrom("observer-o1")), jsPub(must(subj.ProposeFrom("observer-o1")), mustMarshal(t, duel("obs", "s1", "s2")))},
		{"observer forges a commit", obs, cmd2, jsPub(cmd2, commit("s2"))},
		{"observer votes", obs, vote2Subj, pub(vote2Subj, vote2)},
		{"observer asks for status", obs, subj.Status(), req(subj.Status(), nil)},
		{"observer reads commands", obs, api + "CONSUMER.CREATE." + cmdStream + ".peek." + cmd1,
			req(api+"CONSUMER.CREATE."+cmdStream+".peek."+cmd1, consumerReq("peek", cmd1))},
		{"observer subscribes to deployment subjects", obs, subj.Prefix() + ".v1.>", sub(subj.Prefix() + ".v1.>")},
	}
	before := s.state(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(tc.as); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			tc.as.waitViolation(t, tc.subject)
			if d := before.diff(s.state(t)); d != "" {
				t.Errorf("%s changed %s", tc.name, d)
			}
		})
	}

	// Allowed subject, wrong content: refused by the coordinator or JetStream, not NATS.
	t.Run("shard registers another shard on its own subject", func(t *testing.T) {
		reg1, _ := subj.ShardRegister("s1")
		m, err := s1.Request(reg1, reg2, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp := new(smv1.RegisterShardResponse)
		if err := proto.Unmarshal(m.Data, resp); err != nil || resp.GetError().GetCode() != smv1.ErrorCode_ERROR_CODE_INVALID {
			t.Fatalf("answer %v (%v), want INVALID", resp, err)
		}
		if d := before.diff(s.state(t)); d != "" {
			t.Errorf("changed %s", d)
		}
	})
	t.Run("shard's own consumer subject with another filter in the body", func(t *testing.T) {
		subject := api + "CONSUMER.CREATE." + cmdStream + ".shard-s1." + cmd1
		m, err := s1.Request(subject, consumerReq("shard-s1", cmd2), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Error *struct{ Code int } `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil || resp.Error == nil {
			t.Fatalf("JetStream took it: %s", m.Data)
		}
		js, _ := jetstream.New(s.coord.Conn)
		c, err := js.Consumer(ctx, cmdStream, "shard-s1")
		if err != nil || c.CachedInfo().Config.FilterSubject != cmd1 {
			t.Fatalf("shard-s1's filter is now %v (%v)", c.CachedInfo().Config.FilterSubject, err)
		}
		if d := before.diff(s.state(t)); d != "" {
			t.Errorf("changed %s", d)
		}
	})
	t.Run("observer reads events", func(t *testing.T) {
		js, err := jetstream.New(obs.Conn)
		if err != nil {
			t.Fatal(err)
		}
		oc, err := js.OrderedConsumer(ctx, evStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(m.Data()) && len(m.Data()) == 0 {
			t.Fatalf("empty event on %s", m.Subject())
		}
	})
	t.Run("proposer asks for status", func(t *testing.T) {
		_, cli := s.proposer("p3")
		if rec, err := cli.Status(ctx, "warmup"); err != nil || rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("status %v, %v", rec, err)
		}
	})
	for id, c := range map[string]*authConn{"s1": s1, "proposer": prop, "observer": obs} {
		if !c.IsConnected() {
			t.Errorf("%s was disconnected", id)
		}
	}

	// Controls: the same kinds of message, sent by a coordinator (allowed everywhere),
	// are seen by the checks above.
	t.Run("control: a coordinator's forged vote reaches the coordinator", func(t *testing.T) {
		cur := s.state(t)
		if err := s.coord.Publish(vote2Subj, vote2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the vote counted", func() bool { return cur.diff(s.state(t)) != "" })
	})
	t.Run("control: a coordinator's commit reaches the shard", func(t *testing.T) {
		cur := s.state(t)
		js, _ := jetstream.New(s.coord.Conn)
		if _, err := js.Publish(ctx, cmd2, commit("s2")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "s2 delivered the commit", func() bool {
			return s.shards["s2"].srv.Stats().Received > cur.received["s2"]
		})
	})
	t.Run("control: a shard re-registering itself changes the registry", func(t *testing.T) {
		cur := s.state(t)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.shards["s1"].cli.RegisterShard(cctx, &smv1.ShardInfo{ShardId: "s1", Region: "us-east", Capacity: 7, ProtocolVersion: 1}); err != nil {
			t.Fatal(err)
		}
		if d := cur.diff(s.state(t)); d == "" {
			t.Fatal("the registry check did not see a registration")
		}
	})
	_ = nats.ErrPermissionViolation
}
