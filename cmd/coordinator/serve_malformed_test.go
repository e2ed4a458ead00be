package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// undecodable is not a valid protobuf encoding of anything: a length-delimited field
// 1 whose length runs past the end.
var undecodable = []byte{0x0a, 0xff, 0x01}

func mustProto(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// garbageSet is what the test publishes on one subject: random bytes, nothing, a
// huge random message, a certainly undecodable one, and the subject's own wrong
// messages (other message types, or the right type lacking what it must carry). bad
// is how many of them the receiver must count as malformed.
type garbageSet struct {
	payloads [][]byte
	bad      int
}

func garbageFor(t *testing.T, rng *rand.Rand, wrong [][]byte, wrongBad int, emptyBad bool) garbageSet {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	g := garbageSet{payloads: [][]byte{random(1 + rng.IntN(64)), random(1 + rng.IntN(64)), random(1 + rng.IntN(64)),
		{}, random(600 << 10), undecodable}, bad: 1 + wrongBad}
	if emptyBad {
		g.bad++
	}
	g.payloads = append(g.payloads, wrong...)
	return g
}

// nodeSnapshot is what must not change at a coordinator node.
type nodeSnapshot struct {
	applied, fsmApplied uint64
	counts              admin.Counts
}

// TestMultiProcessMalformedInput publishes garbage on every subject the processes
// listen on: the intake stream (with and without a reply inbox, and with an unusable
// Sm-Reply), the status, lease and register requests (with and without a reply), the
// vote and ack subjects of both shards, and both shards' command streams. No process
// exits, the malformed-message counters on the leader's and the shards' /metrics rise
// by at least the messages that cannot be read, and nothing changes: every node's
// applied index and counts, and every shard's participant counters. Then real
// proposals still commit, /metrics counts each of them once in proposals_total (a
// repeat of a proposal id is not a new proposal), and the phase histograms move.
func TestMultiProcessMalformedInput(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	d.startCluster(3, "--no-policy")
	d.startShard("s1")
	d.startShard("s2")
	d.waitRegistered("s1", "s2")
	d.waitSettled(20 * time.Second)
	nc := d.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj := natsutil.MustSubjects(natsutil.DefaultPrefix)
	li := d.waitLeader("")
	leaderMetrics := d.nodes[li].adminURL + "/metrics"

	// Before: the state that must not move, and the counters that must.
	before := map[string]nodeSnapshot{}
	testutil.WaitFor(t, 20*time.Second, "a steady applied index", func() error {
		for _, st := range statuses(d.adminURLs()) {
			if st.Err != nil {
				return st.Err
			}
			before[st.NodeID] = nodeSnapshot{st.AppliedIndex, st.FSMAppliedIndex, st.Counts}
		}
		var idx uint64
		for id, s := range before {
			if idx != 0 && s.applied != idx {
				return fmt.Errorf("%s applied %d, another %d", id, s.applied, idx)
			}
			idx = s.applied
		}
		return nil
	})
	shardBefore := map[string]shardStatus{}
	for id := range d.shards {
		if shardBefore[id], err = d.shardStatus(id); err != nil {
			t.Fatal(err)
		}
	}
	metric := func(url, name string, labels ...string) float64 {
		text, err := getText(url)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := metricSum(text, name, labels...)
		return v
	}
	apiBefore := metric(leaderMetrics, "shardmatch_malformed_messages_total", "source", "api")
	repliesBefore := metric(leaderMetrics, "shardmatch_malformed_messages_total", "source", "shard_replies")
	shardMalformedBefore := map[string]float64{}
	for id, s := range d.shards {
		shardMalformedBefore[id] = metric(s.url+"/metrics", "shardmatch_shard_commands_malformed_total")
	}

	rng := rand.New(rand.NewPCG(42, 3))
	reply := nc.NewInbox()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seq := 0
	jsPublish := func(subject string, data []byte, h nats.Header) {
		seq++
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: h},
			jetstream.WithMsgID(fmt.Sprintf("garbage-%d", seq))); err != nil {
			t.Fatalf("publish garbage %d to %s: %v", seq, subject, err)
		}
	}
	corePublish := func(subject, replyTo string, data []byte) {
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: replyTo, Data: data}); err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
	}
	var apiBad, repliesBad int
	shardBad := map[string]int{}

	// The intake stream: every payload with and without a reply inbox, and one with an
	// unusable Sm-Reply. A ShardInfo decodes as a Proposal with no players: INVALID.
	g := garbageFor(t, rng, [][]byte{mustProto(t, &smv1.ShardInfo{ShardId: "s1", Region: "eu"})}, 0, false)
	for _, p := range g.payloads {
		jsPublish(subj.Propose(), p, nats.Header{natsapi.HeaderReply: {reply}})
		jsPublish(subj.Propose(), p, nil)
	}
	jsPublish(subj.Propose(), undecodable, nats.Header{natsapi.HeaderReply: {"not a subject"}})
	apiBad += 2*g.bad + 1 // the Sm-Reply that is not an inbox counts; its proposal is not read

	// Requests; an empty one lacks its id. A ShardInfo on the lease subject is a
	// LeaseRequest with no op; a StatusRequest on the register subject names an
	// impossible shard id; an Ack on the status subject reads as a status request for
	// an odd id nobody knows (answered NOT_FOUND, not malformed).
	for _, r := range []struct {
		subject  string
		wrong    []byte
		wrongBad int
	}{
		{subj.Status(), mustProto(t, &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "tx-9-9"}}}), 0},
		{natsapi.LeaseSubject(subj), mustProto(t, &smv1.ShardInfo{ShardId: "tx-1-0"}), 1},
		{subj.Register(), mustProto(t, &smv1.StatusRequest{Id: "not a shard id"}), 1},
	} {
		subject := r.subject
		g := garbageFor(t, rng, [][]byte{r.wrong}, r.wrongBad, true)
		for _, p := range g.payloads {
			corePublish(subject, reply, p)
			corePublish(subject, "", p) // no reply: dropped and counted
		}
		apiBad += g.bad + len(g.payloads)
	}

	// Votes and acks: an ack on a vote subject and a vote on an ack subject are
	// malformed, a reply naming the other shard is a mismatch, and a well-formed vote
	// for a txid nobody knows is ignored.
	for _, sh := range []string{"s1", "s2"} {
		other := map[string]string{"s1": "s2", "s2": "s1"}[sh]
		vote, _ := subj.CoordVote(sh)
		ack, _ := subj.CoordAck(sh)
		voteMsg := func(shard string) []byte {
			return mustProto(t, &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{Txid: "tx-9-9", ShardId: shard, Vote: smv1.VoteValue_VOTE_YES}}})
		}
		ackMsg := func(shard string) []byte {
			return mustProto(t, &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: "tx-9-9", ShardId: shard,
				Outcome: smv1.Outcome_OUTCOME_COMMITTED}}})
		}
		for subject, wrong := range map[string][][]byte{
			vote: {ackMsg(sh), voteMsg(other), voteMsg(sh)},
			ack:  {voteMsg(sh), ackMsg(other), ackMsg(sh)},
		} {
			g := garbageFor(t, rng, wrong, 2, true)
			for _, p := range g.payloads {
				corePublish(subject, "", p)
			}
			repliesBad += g.bad
		}
	}

	// Command streams: another message type, a Prepare without a txid, and a Commit
	// addressed to the other shard.
	for _, sh := range []string{"s1", "s2"} {
		other := map[string]string{"s1": "s2", "s2": "s1"}[sh]
		cmd, _ := subj.ShardCmd(sh)
		g := garbageFor(t, rng, [][]byte{
			mustProto(t, &smv1.StatusRequest{Id: "x"}),
			mustProto(t, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{ShardId: sh}}}),
			mustProto(t, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: "tx-9-9", ShardId: other}}}),
		}, 3, true)
		for _, p := range g.payloads {
			jsPublish(cmd, p, nil)
		}
		shardBad[sh] = g.bad
	}

	// The counters rise by at least what could not be read.
	testutil.WaitFor(t, 20*time.Second, "malformed counters to rise", func() error {
		if got := metric(leaderMetrics, "shardmatch_malformed_messages_total", "source", "api") - apiBefore; got < float64(apiBad) {
			return fmt.Errorf("leader api: %v malformed, want >= %d", got, apiBad)
		}
		if got := metric(leaderMetrics, "shardmatch_malformed_messages_total", "source", "shard_replies") - repliesBefore; got < float64(repliesBad) {
			return fmt.Errorf("leader shard replies: %v malformed, want >= %d", got, repliesBad)
		}
		for id, s := range d.shards {
			if got := metric(s.url+"/metrics", "shardmatch_shard_commands_malformed_total") - shardMalformedBefore[id]; got < float64(shardBad[id]) {
				return fmt.Errorf("%s: %v malformed commands, want >= %d", id, got, shardBad[id])
			}
		}
		return nil
	})
	// Every request that gave a reply inbox was answered (INVALID, or NOT_FOUND for
	// the status of a txid nobody knows).
	answers := 0
	for {
		if _, err := sub.NextMsg(500 * time.Millisecond); err != nil {
			break
		}
		answers++
	}
	if answers == 0 {
		t.Error("no request with a reply inbox was answered")
	}

	// Nothing died and nothing changed.
	for _, p := range d.procs {
		if !p.running() {
			t.Errorf("%s exited", p.name)
		}
	}
	for _, st := range statuses(d.adminURLs()) {
		if st.Err != nil {
			t.Fatal(st.Err)
		}
		b := before[st.NodeID]
		if now := (nodeSnapshot{st.AppliedIndex, st.FSMAppliedIndex, st.Counts}); now != b {
			t.Errorf("%s changed under garbage alone: %+v -> %+v", st.NodeID, b, now)
		}
	}
	for id := range d.shards {
		s, err := d.shardStatus(id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Participant != shardBefore[id].Participant || len(s.InDoubt) > 0 {
			t.Errorf("%s changed under garbage alone: %+v -> %+v (in doubt %v)", id, shardBefore[id].Participant, s.Participant, s.InDoubt)
		}
	}

	// A real proposal still commits; each proposal counts once in proposals_total.
	proposalsBefore := sumOverNodes(t, d, "shardmatch_proposals_total")
	phasesBefore := map[string]float64{}
	for _, ph := range []admin.Phase{admin.PhasePrepare, admin.PhaseDecide, admin.PhaseDeliver} {
		phasesBefore[string(ph)] = metric(leaderMetrics, "shardmatch_phase_duration_seconds_count", "phase", string(ph))
	}
	cl := d.client(client.Config{})
	var committed *smv1.Proposal
	attempts := 0
	for i := 0; committed == nil && i < 40; i++ {
		attempts++
		p := &smv1.Proposal{ProposalId: fmt.Sprintf("real-%d", i), Mode: "duel", MatchTtlMs: 60_000, Teams: []*smv1.Team{
			{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("s1-p%05d", 7*i), ShardId: "s1"}}},
			{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("s2-p%05d", 7*i), ShardId: "s2"}}},
		}}
		dec, err := cl.Propose(ctx, p)
		if err != nil {
			t.Fatalf("proposal %s: %v", p.GetProposalId(), err)
		}
		if dec.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
			committed = p
		}
	}
	if committed == nil {
		t.Fatalf("no match committed in %d attempts after the garbage", attempts)
	}
	if _, err := cl.Propose(ctx, committed); err != nil { // a repeat: not a new proposal
		t.Fatal(err)
	}
	d.waitSettled(20 * time.Second)
	if got := sumOverNodes(t, d, "shardmatch_proposals_total") - proposalsBefore; got != float64(attempts) {
		t.Errorf("proposals_total rose by %v over the nodes, want %d (one per proposal)", got, attempts)
	}
	testutil.WaitFor(t, 10*time.Second, "phase histograms to move", func() error {
		for ph, was := range phasesBefore {
			if now := metric(leaderMetrics, "shardmatch_phase_duration_seconds_count", "phase", ph); now <= was {
				return fmt.Errorf("phase %s: count %v, was %v", ph, now, was)
			}
		}
		return nil
	})
	// The committed match's commands went out (a Prepare and a Commit at least), and
	// every message carried at least one.
	sent := metric(leaderMetrics, "shardmatch_shard_commands_sent_total")
	if msgs := metric(leaderMetrics, "shardmatch_shard_command_messages_total"); sent < 2 || msgs < 1 || msgs > sent {
		t.Errorf("leader: %v commands sent in %v messages; want at least 2, in 1 to that many messages", sent, msgs)
	}
}

// sumOverNodes adds up metric name over every running node's /metrics.
func sumOverNodes(t *testing.T, d *deployment, name string) float64 {
	t.Helper()
	var sum float64
	for _, n := range d.nodes {
		if !n.running() {
			continue
		}
		text, err := getText(n.adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := metricSum(text, name)
		sum += v
	}
	return sum
}
