package natstransport_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

func newSigner(tb testing.TB) *cmdsig.Signer {
	tb.Helper()
	seed, _, err := cmdsig.GenerateSeed()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := cmdsig.NewSigner(seed)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func trust(tb testing.TB, s ...*cmdsig.Signer) *cmdsig.Verifier {
	tb.Helper()
	var keys []string
	for _, x := range s {
		keys = append(keys, x.PublicKey())
	}
	v, err := cmdsig.NewVerifier(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// forgery is a message a non-coordinator publishes straight onto s1's command subject,
// and the txid whose state it must not change.
type forgery struct {
	name, txid string
	msg        *nats.Msg
	reason     string // which ShardServerStats counter refuses it when verifying
}

// sigFixture is a coordinator transport signing with key, shards s1 and s2 on their
// own journals, and a raw connection that can both sniff commands and publish its
// own.
type sigFixture struct {
	env      *natsEnv
	key      *cmdsig.Signer
	sink     *replySink
	coord    *natstransport.Coordinator
	games    map[string]*game
	journals map[string]twophase.Journal
	parts    map[string]*twophase.Participant
	srvs     map[string]*natstransport.ShardServer
	raw      *nats.Conn
	sniffed  *nats.Subscription
}

func newSigFixture(t *testing.T, verify bool) *sigFixture {
	f := &sigFixture{env: newNatsEnv(t), key: newSigner(t), sink: newReplySink(), games: map[string]*game{},
		journals: map[string]twophase.Journal{}, parts: map[string]*twophase.Participant{}, srvs: map[string]*natstransport.ShardServer{}}
	var err error
	f.coord, err = natstransport.NewCoordinator(context.Background(), natstransport.CoordinatorConfig{Conn: f.env.connect(),
		Replies: f.sink.handle, Clock: testEpochClock, Signer: f.key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.coord.Close() })
	for _, s := range []string{"s1", "s2"} {
		f.games[s], f.journals[s] = newGame(), twophase.NewMemJournal()
		f.parts[s] = newParticipant(t, s, f.games[s], f.journals[s])
		f.srvs[s] = serve(t, f.env.connect(), s, f.parts[s], func(c *natstransport.ParticipantConfig) {
			if verify {
				c.Verifier = trust(t, f.key)
			}
		})
	}
	f.raw = f.env.connect()
	// JetStream publishes are plain NATS messages too: anyone allowed to subscribe to
	// the command subjects sees the coordinator's signed commands.
	if f.sniffed, err = f.raw.SubscribeSync("sm.v1.shard.*.cmd"); err != nil {
		t.Fatal(err)
	}
	if err := f.raw.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// commitMatch runs txid through prepare and commit on s1 and s2 with the coordinator's
// transport and waits for the acks.
func (f *sigFixture) commitMatch(t *testing.T, txid string) {
	t.Helper()
	votes, acks, _ := f.sink.counts()
	for _, s := range []string{"s1", "s2"} {
		send(t, f.coord, s, prepare(txid, s, players(txid+"-"+s)...))
	}
	f.sink.waitVotes(t, votes+2)
	for _, s := range []string{"s1", "s2"} {
		if v := f.sink.vote(txid, s); v.GetVote() != smv1.VoteValue_VOTE_YES {
			t.Fatalf("vote of %s on %s: %v", s, txid, v)
		}
		send(t, f.coord, s, commit(txid, s))
	}
	f.sink.waitAcks(t, acks+2)
	for _, s := range []string{"s1", "s2"} {
		if p, c, a := f.games[s].counts(txid); p != 1 || c != 1 || a != 0 {
			t.Fatalf("%s on %s: %d prepares, %d commits, %d aborts; want 1 1 0", txid, s, p, c, a)
		}
	}
}

// sniff returns the command the raw connection saw on subject with that Nats-Msg-Id
// prefix (<txid>/<phase>/<shard>).
func (f *sigFixture) sniff(t *testing.T, subject, msgID string) *nats.Msg {
	t.Helper()
	for {
		m, err := f.sniffed.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("sniffing %s %s: %v", subject, msgID, err)
		}
		if m.Subject == subject && strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), msgID+"/") {
			return m
		}
	}
}

// forgeries builds every attack on s1's command subject: unsigned, signed with an
// untrusted key, a trusted key named over another key's signature, the coordinator's
// authentic command for s2 replayed on s1's subject, and an authentic s1 command with
// its payload altered. Each names a txid s1 never prepared.
func (f *sigFixture) forgeries(t *testing.T) []forgery {
	const s1 = "sm.v1.shard.s1.cmd"
	rogue := newSigner(t)
	msg := func(cmd *smv1.ShardCommand, sign func(nats.Header, []byte)) *nats.Msg {
		data := marshal(t, cmd)
		h := nats.Header{}
		if sign != nil {
			sign(h, data)
		}
		return &nats.Msg{Subject: s1, Data: data, Header: h}
	}
	byRogue := func(h nats.Header, data []byte) { rogue.SignHeader(h, s1, data) }
	impersonate := func(h nats.Header, data []byte) {
		rogue.SignHeader(h, s1, data)
		h.Set(cmdsig.HeaderSigner, f.key.PublicKey())
	}

	// Authentic material: the coordinator's own commands for a match of s2 alone and
	// one of s1, as anyone subscribed to the command subjects receives them.
	send(t, f.coord, "s2", prepare("txR", "s2", players("txR-s2")...))
	testutil.WaitUntil(t, 10*time.Second, "s2's vote on txR", func() bool { return f.sink.vote("txR", "s2") != nil })
	send(t, f.coord, "s2", commit("txR", "s2"))
	authS2 := f.sniff(t, "sm.v1.shard.s2.cmd", natstransport.MsgID("txR", natstransport.PhaseCommit, "s2"))
	send(t, f.coord, "s1", abort("txZ", "s1"))
	authS1 := f.sniff(t, s1, natstransport.MsgID("txZ", natstransport.PhaseAbort, "s1"))
	testutil.WaitUntil(t, 10*time.Second, "the acks of txR and txZ", func() bool {
		return f.sink.ack("txR", "s2") != nil && f.sink.ack("txZ", "s1") != nil
	})
	if authS2.Header.Get(cmdsig.HeaderSig) == "" || authS1.Header.Get(cmdsig.HeaderSig) == "" {
		t.Fatal("the coordinator's commands are not signed")
	}
	// txR on s2 rewritten to name s1: a payload shard s1 would otherwise apply.
	cmd := new(smv1.ShardCommand)
	if err := proto.Unmarshal(authS2.Data, cmd); err != nil {
		t.Fatal(err)
	}
	cmd.GetCommit().ShardId = "s1"
	cmd.GetCommit().Txid = "txReplayRewritten"
	// The forger keeps the signature headers and drops Nats-Msg-Id: a verbatim copy
	// would be dropped by the stream's dedupe window, which would prove nothing.
	stolen := func(m *nats.Msg) nats.Header {
		h := nats.Header{}
		for _, k := range []string{cmdsig.HeaderSigner, cmdsig.HeaderSig, natstransport.HeaderTerm} {
			h.Set(k, m.Header.Get(k))
		}
		return h
	}
	// The abort of txZ on s1 turned into a commit of another txid, signature kept.
	tampered := &nats.Msg{Subject: s1, Data: marshal(t, commit("txTampered", "s1")), Header: stolen(authS1)}

	return []forgery{
		{"unsigned commit", "txF1", msg(commit("txF1", "s1"), nil), "unsigned"},
		{"unsigned prepare", "txF2", msg(prepare("txF2", "s1", players("victim1")...), nil), "unsigned"},
		{"commit signed by an untrusted key", "txF3", msg(commit("txF3", "s1"), byRogue), "unknown"},
		{"prepare signed by an untrusted key", "txF4", msg(prepare("txF4", "s1", players("victim2")...), byRogue), "unknown"},
		{"commit naming the trusted key, signed by another", "txF5", msg(commit("txF5", "s1"), impersonate), "bad"},
		{"s2's authentic commit replayed on s1", "txR", &nats.Msg{Subject: s1, Data: authS2.Data, Header: stolen(authS2)}, "bad"},
		{"s2's authentic commit rewritten for s1", "txReplayRewritten", &nats.Msg{Subject: s1, Data: marshal(t, cmd), Header: stolen(authS2)}, "bad"},
		{"s1's authentic abort altered to a commit", "txTampered", tampered, "bad"},
	}
}

// publish stores m in the command stream, as a forger with publish rights would.
func (f *sigFixture) publish(t *testing.T, m *nats.Msg) {
	t.Helper()
	if _, err := f.env.js(f.raw).PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// A shard that verifies refuses every forged command (unsigned, untrusted key,
// impersonated key, authentic signature on another subject, altered payload): none is
// decoded, handled, journaled or answered, each is terminated once, and the
// coordinator's own signed commands keep committing matches before and after.
func TestForgedCommandsRefused(t *testing.T) {
	f := newSigFixture(t, true)
	f.commitMatch(t, "txA")
	forged := f.forgeries(t)
	before := f.parts["s1"].Stats()
	votes, acks, replies := f.sink.counts()
	for _, x := range forged {
		f.publish(t, x.msg)
	}
	f.commitMatch(t, "txB") // after the forgeries in the stream: the shard still serves

	srv := f.srvs["s1"]
	testutil.WaitFor(t, 10*time.Second, "every forgery to be refused", func() error {
		st := srv.Stats()
		if st.Unsigned != 2 || st.UnknownSigner != 2 || st.BadSignature != 4 || st.SignatureRejected() != uint64(len(forged)) {
			return fmt.Errorf("server stats %+v", st)
		}
		if info := consumerInfo(t, f.env.js(f.raw), "s1"); info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("consumer: %d ack pending, %d pending, %d redelivered", info.NumAckPending, info.NumPending, info.NumRedelivered)
		}
		return nil
	})
	st := srv.Stats()
	if st.Malformed+st.WrongShard+st.Rejected+st.HandlerErrors != 0 {
		t.Errorf("forgeries reached the decoder or the handler: %+v", st)
	}
	for _, x := range forged {
		if p, c, a := f.games["s1"].counts(x.txid); p+c+a != 0 {
			t.Errorf("%s: the game saw %d prepares, %d commits, %d aborts of %s", x.name, p, c, a, x.txid)
		}
		if e, found, err := f.journals["s1"].Get(x.txid); err != nil || found {
			t.Errorf("%s: journal holds %s: %+v (err %v)", x.name, x.txid, e, err)
		}
		if f.sink.vote(x.txid, "s1") != nil || f.sink.ack(x.txid, "s1") != nil {
			t.Errorf("%s: s1 answered for %s", x.name, x.txid)
		}
	}
	// Only txB's own prepare, vote and commit happened on s1 meanwhile.
	after := f.parts["s1"].Stats()
	if after.Prepares != before.Prepares+1 || after.Commits != before.Commits+1 || after.Anomalies != 0 || after.Violations != 0 {
		t.Errorf("participant stats went from %+v to %+v", before, after)
	}
	if v, a, n := f.sink.counts(); v != votes+2 || a != acks+2 || n != replies+4 {
		t.Errorf("replies went from %d votes %d acks %d total to %d %d %d", votes, acks, replies, v, a, n)
	}
	if got := f.games["s1"].committed(); fmt.Sprint(got) != "[txA txB]" {
		t.Errorf("s1 committed %v, want [txA txB]", got)
	}
}

// The negative control of TestForgedCommandsRefused: without a Verifier the same
// forgeries are handled. The forged COMMIT of a txid s1 never prepared books players
// (a "commit without a YES" anomaly), the forged PREPAREs lock players and vote YES:
// so the refusals above are the verification's doing, not the test's.
func TestForgedCommandsAppliedWithoutVerifier(t *testing.T) {
	f := newSigFixture(t, false)
	f.commitMatch(t, "txA")
	forged := f.forgeries(t)
	for _, x := range forged {
		f.publish(t, x.msg)
	}
	srv := f.srvs["s1"]
	testutil.WaitFor(t, 10*time.Second, "every forgery to be consumed", func() error {
		// Taken from the consumer (3 authentic commands and the forgeries), then settled:
		// the consumer's counts alone once passed before the last forgeries were
		// delivered (CI, a loaded machine).
		if got, want := srv.Stats().Received, uint64(3+len(forged)); got < want {
			return fmt.Errorf("%d commands received, want %d", got, want)
		}
		if info := consumerInfo(t, f.env.js(f.raw), "s1"); info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer: %d ack pending, %d pending", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if st := srv.Stats(); st.SignatureRejected() != 0 || st.WrongShard != 1 {
		t.Errorf("without a verifier: stats %+v, want no signature refused and s2's replayed commit refused as wrong shard", st)
	}
	if _, c, _ := f.games["s1"].counts("txF1"); c != 1 {
		t.Errorf("the forged unsigned COMMIT was not applied (%d commits): the test could not fail", c)
	}
	if e, found, _ := f.journals["s1"].Get("txF1"); !found || e.State != twophase.JournalCommitted {
		t.Errorf("journal of txF1: %+v, %v", e, found)
	}
	if v := f.sink.vote("txF2", "s1"); v.GetVote() != smv1.VoteValue_VOTE_YES {
		t.Errorf("the forged unsigned PREPARE got vote %v, want YES", v)
	}
	if f.parts["s1"].Stats().Anomalies == 0 {
		t.Error("no commit-without-YES anomaly recorded")
	}
	// The signature binding is what stops these two: without it s1 applies them.
	for _, txid := range []string{"txReplayRewritten", "txTampered"} {
		if _, c, _ := f.games["s1"].counts(txid); c != 1 {
			t.Errorf("%s: %d commits without a verifier, want 1", txid, c)
		}
	}
}

// Resends and the fault hook's duplicates carry a new Nats-Msg-Id and traceparent, so
// JetStream stores them again and the shard handles them again: they must verify.
// A coordinator switching to a key the shard does not trust yet (a rotation done in
// the wrong order) has its commands refused, and its resends go through once the
// shard trusts the key: nothing is lost.
func TestSignedResendsAndRotation(t *testing.T) {
	env := newNatsEnv(t)
	sink := newReplySink()
	oldKey, newKey := newSigner(t), newSigner(t)
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	faults := natstransport.NewFaults(1)
	if err := faults.SetPercent(100, 0); err != nil {
		t.Fatal(err)
	}
	coord, err := natstransport.NewCoordinator(context.Background(), natstransport.CoordinatorConfig{Conn: env.connect(),
		Replies: sink.handle, Clock: clk, Signer: oldKey, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = coord.Close() })
	g := newGame()
	srv := serve(t, env.connect(), "s1", newParticipant(t, "s1", g, nil), func(c *natstransport.ParticipantConfig) {
		c.Verifier = trust(t, oldKey)
	})
	handled := func(n uint64) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d commands handled", n), func() error {
			if st := srv.Stats(); st.Handled != n {
				return fmt.Errorf("stats %+v", st)
			}
			return nil
		})
	}
	send(t, coord, "s1", prepare("tx1", "s1", players("a")...)) // stored twice: the copy has its own id
	handled(2)
	clk.Advance(natstransport.DefaultResendEpoch) // a resend in a new epoch is stored again
	send(t, coord, "s1", prepare("tx1", "s1", players("a")...))
	handled(4)
	if st := srv.Stats(); st.SignatureRejected() != 0 {
		t.Fatalf("resends refused: %+v", st)
	}

	// Wrong order: the coordinator signs with the new key first.
	coord.SetSigner(newKey)
	send(t, coord, "s1", commit("tx1", "s1"))
	testutil.WaitFor(t, 10*time.Second, "the commit to be refused", func() error {
		if st := srv.Stats(); st.UnknownSigner != 2 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	if _, c, _ := g.counts("tx1"); c != 0 {
		t.Fatal("a commit signed by an untrusted key was applied")
	}
	// The shard learns the new key (old and new trusted); the driver's resend commits.
	srv.SetVerifier(trust(t, oldKey, newKey))
	clk.Advance(natstransport.DefaultResendEpoch)
	send(t, coord, "s1", commit("tx1", "s1"))
	sink.waitAcks(t, 1)
	if _, c, _ := g.counts("tx1"); c != 1 {
		t.Fatalf("tx1 committed %d times, want 1", c)
	}
}
