package twophase

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

var ptEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ptHandler is a ShardHandler that records every call, votes NO for the txids in
// reject, and fails Commit/Abort while failCommit/failAbort are set.
type ptHandler struct {
	mu                    sync.Mutex
	prepares, commits     map[string]int
	aborts                map[string]int
	reject                map[string][]*smv1.PlayerRejection
	failCommit, failAbort error
	failPrepare           error               // Prepare's error while set
	committed             map[string][]string // txid → the players Commit was given
}

func newPtHandler() *ptHandler {
	return &ptHandler{prepares: map[string]int{}, commits: map[string]int{}, aborts: map[string]int{}, reject: map[string][]*smv1.PlayerRejection{},
		committed: map[string][]string{}}
}

func (h *ptHandler) Prepare(_ context.Context, txid string, _ []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prepares[txid]++
	if h.failPrepare != nil {
		return nil, h.failPrepare
	}
	return h.reject[txid], nil
}

func (h *ptHandler) Commit(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failCommit != nil {
		return h.failCommit
	}
	h.commits[txid]++
	for _, pl := range players {
		h.committed[txid] = append(h.committed[txid], pl.GetPlayerId())
	}
	return nil
}

func (h *ptHandler) Abort(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failAbort != nil {
		return h.failAbort
	}
	h.aborts[txid]++
	return nil
}

// calls returns the prepare, commit and abort counts of txid.
func (h *ptHandler) calls(txid string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("p%d c%d a%d", h.prepares[txid], h.commits[txid], h.aborts[txid])
}

type ptFixture struct {
	t   *testing.T
	p   *Participant
	h   *ptHandler
	j   Journal
	clk *clock.Fake
}

func newPtFixture(t *testing.T, j Journal) *ptFixture {
	t.Helper()
	if j == nil {
		j = NewMemJournal()
	}
	f := &ptFixture{t: t, h: newPtHandler(), j: j, clk: clock.NewFake(ptEpoch)}
	f.restart()
	return f
}

// restart makes a new Participant on the same journal, as after a process restart.
func (f *ptFixture) restart() {
	f.t.Helper()
	p, err := NewParticipant(ParticipantConfig{ShardID: "s1", Handler: f.h, Journal: f.j, Clock: f.clk, TombstoneRetention: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	f.p = p
}

func ptPlayers(spec ...any) []*smv1.ShardPlayer {
	var out []*smv1.ShardPlayer
	for i := 0; i < len(spec); i += 2 {
		out = append(out, &smv1.ShardPlayer{PlayerId: spec[i].(string), FencingToken: uint64(spec[i+1].(int))})
	}
	return out
}

func ptPrepare(txid string, players ...*smv1.ShardPlayer) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: txid, ShardId: "s1", Players: players, Term: 4}}}
}

func ptCommit(txid string, players ...*smv1.ShardPlayer) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: txid, ShardId: "s1", Players: players, Term: 4}}}
}

func ptAbort(txid string, players ...*smv1.ShardPlayer) *smv1.ShardCommand {
	return &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{Txid: txid, ShardId: "s1", Players: players, Term: 4}}}
}

// do sends cmd and returns the reply rendered compactly, e.g. "vote tx1 YES" or
// "vote tx1 NO STALE_TOKEN", "ack tx1 COMMITTED", or "err" if no reply came.
func (f *ptFixture) do(cmd *smv1.ShardCommand) string {
	f.t.Helper()
	r, err := f.p.HandleCommand(context.Background(), cmd)
	if err != nil {
		if r != nil {
			f.t.Fatalf("error %v with a reply %v", err, r)
		}
		return "err"
	}
	return ptRender(f.t, r)
}

func ptRender(t *testing.T, r *smv1.ShardReply) string {
	t.Helper()
	if v := r.GetVote(); v != nil {
		if v.GetShardId() != "s1" || v.GetTerm() != 4 {
			t.Fatalf("vote does not echo shard and term: %v", v)
		}
		s := "vote " + v.GetTxid() + " " + strings.TrimPrefix(v.GetVote().String(), "VOTE_")
		for _, rj := range v.GetRejections() {
			s += " " + rj.GetCode()
		}
		return s
	}
	a := r.GetAck()
	if a.GetShardId() != "s1" || a.GetTerm() != 4 {
		t.Fatalf("ack does not echo shard and term: %v", a)
	}
	return "ack " + a.GetTxid() + " " + strings.TrimPrefix(a.GetOutcome().String(), "OUTCOME_")
}

func (f *ptFixture) expect(cmd *smv1.ShardCommand, want string) {
	f.t.Helper()
	if got := f.do(cmd); got != want {
		f.t.Fatalf("reply = %q, want %q", got, want)
	}
}

func (f *ptFixture) state(txid string) string {
	f.t.Helper()
	e, ok, err := f.j.Get(txid)
	if err != nil {
		f.t.Fatal(err)
	}
	if !ok {
		return "none"
	}
	return e.State.String()
}

func TestParticipantConfigValidation(t *testing.T) {
	good := ParticipantConfig{ShardID: "s1", Handler: newPtHandler(), Journal: NewMemJournal(), Clock: clock.NewFake(ptEpoch)}
	for field, mutate := range map[string]func(*ParticipantConfig){
		"ShardID":            func(c *ParticipantConfig) { c.ShardID = "" },
		"Handler":            func(c *ParticipantConfig) { c.Handler = nil },
		"Journal":            func(c *ParticipantConfig) { c.Journal = nil },
		"TombstoneRetention": func(c *ParticipantConfig) { c.TombstoneRetention = -time.Second },
	} {
		c := good
		mutate(&c)
		if _, err := NewParticipant(c); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err = %v, want it named", field, err)
		}
	}
	if _, err := NewParticipant(good); err != nil {
		t.Fatal(err)
	}
}

func TestParticipantPrepareYesThenCommit(t *testing.T) {
	f := newPtFixture(t, nil)
	pl := ptPlayers("alice", 10, "bob", 11)
	f.expect(ptPrepare("tx1", pl...), "vote tx1 YES")
	if f.state("tx1") != "PREPARED" || fmt.Sprint(f.p.InDoubt()) != "[tx1]" {
		t.Fatalf("after YES: journal %s, in doubt %v", f.state("tx1"), f.p.InDoubt())
	}
	f.expect(ptPrepare("tx1", pl...), "vote tx1 YES") // duplicate: repeated, not re-asked
	f.expect(ptCommit("tx1", pl...), "ack tx1 COMMITTED")
	f.expect(ptCommit("tx1", pl...), "ack tx1 COMMITTED")
	f.expect(ptPrepare("tx1", pl...), "vote tx1 YES") // late duplicate after the decision
	if got := f.h.calls("tx1"); got != "p1 c1 a0" {
		t.Fatalf("handler calls = %s", got)
	}
	if f.state("tx1") != "COMMITTED" || len(f.p.InDoubt()) != 0 {
		t.Fatalf("after commit: journal %s, in doubt %v", f.state("tx1"), f.p.InDoubt())
	}
	s := f.p.Stats()
	if s.Prepares != 3 || s.VotesYes != 3 || s.Commits != 1 || s.Duplicates != 3 || s.Anomalies != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestParticipantPrepareNoIsRepeated(t *testing.T) {
	f := newPtFixture(t, nil)
	f.h.reject["tx1"] = []*smv1.PlayerRejection{{PlayerId: "alice", Code: "OFFLINE"}}
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO OFFLINE")
	delete(f.h.reject, "tx1") // the game changed its mind; the vote must not
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO OFFLINE")
	if f.state("tx1") != "VOTED_NO" || len(f.p.InDoubt()) != 0 {
		t.Fatalf("journal %s, in doubt %v", f.state("tx1"), f.p.InDoubt())
	}
	f.expect(ptAbort("tx1", ptPlayers("alice", 1)...), "ack tx1 ABORTED")
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO ABORTED")
	if got := f.h.calls("tx1"); got != "p1 c0 a0" { // never Abort for a NO vote
		t.Fatalf("handler calls = %s", got)
	}
}

func TestParticipantAbortPrepared(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 YES")
	f.expect(ptAbort("tx1"), "ack tx1 ABORTED")
	f.expect(ptAbort("tx1"), "ack tx1 ABORTED")
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO ABORTED")
	if got := f.h.calls("tx1"); got != "p1 c0 a1" {
		t.Fatalf("handler calls = %s", got)
	}
	if f.state("tx1") != "ABORTED" || len(f.p.InDoubt()) != 0 {
		t.Fatalf("journal %s, in doubt %v", f.state("tx1"), f.p.InDoubt())
	}
	// The players are free again.
	f.expect(ptPrepare("tx2", ptPlayers("alice", 2)...), "vote tx2 YES")
}

func TestParticipantAbortOvertakesPrepare(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptAbort("tx1", ptPlayers("alice", 1)...), "ack tx1 ABORTED")
	if f.state("tx1") != "ABORTED" {
		t.Fatalf("no tombstone: %s", f.state("tx1"))
	}
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO ABORTED")
	if got := f.h.calls("tx1"); got != "p0 c0 a0" {
		t.Fatalf("handler calls = %s", got)
	}
	// The tombstone survives a restart.
	f.restart()
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 NO ABORTED")
	// A NO always says why, even for a Prepare without players.
	f.expect(ptAbort("tx2"), "ack tx2 ABORTED")
	f.expect(ptPrepare("tx2"), "vote tx2 NO ABORTED")
}

func TestParticipantCommitUnknownIsAppliedAndCounted(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptCommit("tx1", ptPlayers("alice", 3)...), "ack tx1 COMMITTED")
	f.expect(ptCommit("tx1", ptPlayers("alice", 3)...), "ack tx1 COMMITTED")
	if got := f.h.calls("tx1"); got != "p0 c1 a0" {
		t.Fatalf("handler calls = %s", got)
	}
	if s := f.p.Stats(); s.Anomalies != 1 || s.Commits != 1 || s.Duplicates != 1 {
		t.Fatalf("stats = %+v", s)
	}
	if f.p.HighestToken("alice") != 3 {
		t.Fatalf("commit did not record the token: %d", f.p.HighestToken("alice"))
	}
}

func TestParticipantConflictingDecisionsAreRefused(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptAbort("tx1"), "ack tx1 ABORTED")
	if _, err := f.p.HandleCommand(context.Background(), ptCommit("tx1")); !errors.Is(err, ErrConflictingDecision) {
		t.Fatalf("commit after abort: err = %v", err)
	}
	f.expect(ptPrepare("tx2", ptPlayers("bob", 1)...), "vote tx2 YES")
	f.expect(ptCommit("tx2"), "ack tx2 COMMITTED")
	if _, err := f.p.HandleCommand(context.Background(), ptAbort("tx2")); !errors.Is(err, ErrConflictingDecision) {
		t.Fatalf("abort after commit: err = %v", err)
	}
	if f.h.calls("tx1") != "p0 c0 a0" || f.h.calls("tx2") != "p1 c1 a0" {
		t.Fatalf("handler calls = %s, %s", f.h.calls("tx1"), f.h.calls("tx2"))
	}
	if f.state("tx1") != "ABORTED" || f.state("tx2") != "COMMITTED" {
		t.Fatal("a refused decision changed the journal")
	}
	if s := f.p.Stats(); s.Violations != 2 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestParticipantRefusesOtherShardsAndMalformed(t *testing.T) {
	f := newPtFixture(t, nil)
	for _, cmd := range []*smv1.ShardCommand{
		{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: "tx1", ShardId: "s2"}}},
		{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: "tx1", ShardId: "s2"}}},
		{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{Txid: "tx1", ShardId: ""}}},
	} {
		if r, err := f.p.HandleCommand(context.Background(), cmd); !errors.Is(err, ErrWrongShard) || r != nil {
			t.Fatalf("%v: %v, %v", cmd, r, err)
		}
	}
	for _, cmd := range []*smv1.ShardCommand{nil, {}, ptPrepare(""), {Cmd: &smv1.ShardCommand_Commit{}}} {
		if r, err := f.p.HandleCommand(context.Background(), cmd); !errors.Is(err, ErrMalformedCommand) || r != nil {
			t.Fatalf("%v: %v, %v", cmd, r, err)
		}
	}
	if got := f.state("tx1"); got != "none" {
		t.Fatalf("a refused command was journaled: %s", got)
	}
}

func TestParticipantStaleTokenAndFence(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptPrepare("tx1", ptPlayers("alice", 10)...), "vote tx1 YES")
	f.expect(ptCommit("tx1"), "ack tx1 COMMITTED")
	f.expect(ptPrepare("tx2", ptPlayers("alice", 5, "bob", 1)...), "vote tx2 NO STALE_TOKEN")
	f.expect(ptPrepare("tx2", ptPlayers("alice", 5, "bob", 1)...), "vote tx2 NO STALE_TOKEN")
	if got := f.h.calls("tx2"); got != "p0 c0 a0" {
		t.Fatalf("handler asked about a stale prepare: %s", got)
	}
	if s := f.p.Stats(); s.StaleTokens != 1 {
		t.Fatalf("stats = %+v", s)
	}

	err := f.p.Fence("alice", 9)
	var st *StaleTokenError
	if !errors.Is(err, ErrStaleToken) || !errors.As(err, &st) || st.Player != "alice" || st.Token != 9 || st.Highest != 10 {
		t.Fatalf("Fence(alice, 9) = %v", err)
	}
	for _, tok := range []uint64{10, 12, 12} {
		if err := f.p.Fence("alice", tok); err != nil {
			t.Fatalf("Fence(alice, %d) = %v", tok, err)
		}
	}
	if err := f.p.Fence("carol", 0); err != nil {
		t.Fatalf("Fence of an unseen player = %v", err)
	}
	f.restart() // the highest token is durable
	if f.p.HighestToken("alice") != 12 || !errors.Is(f.p.Fence("alice", 11), ErrStaleToken) {
		t.Fatalf("after restart HighestToken = %d", f.p.HighestToken("alice"))
	}
}

func TestParticipantReservedByUndecided(t *testing.T) {
	f := newPtFixture(t, nil)
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 YES")
	f.restart() // the game forgot; the journal did not
	f.expect(ptPrepare("tx2", ptPlayers("alice", 2, "bob", 2)...), "vote tx2 NO RESERVED")
	if got := f.h.calls("tx2"); got != "p0 c0 a0" {
		t.Fatalf("handler asked about a reserved player: %s", got)
	}
	f.expect(ptCommit("tx1"), "ack tx1 COMMITTED")
	f.expect(ptPrepare("tx3", ptPlayers("alice", 3, "bob", 3)...), "vote tx3 YES")
}

// failingJournal fails Put while fail is set.
type failingJournal struct {
	Journal
	mu   sync.Mutex
	fail bool
}

func (j *failingJournal) Put(e JournalEntry, tokens map[string]uint64) error {
	j.mu.Lock()
	fail := j.fail
	j.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return j.Journal.Put(e, tokens)
}

func TestParticipantNoVoteWithoutRecord(t *testing.T) {
	fj := &failingJournal{Journal: NewMemJournal(), fail: true}
	f := newPtFixture(t, fj)
	if got := f.do(ptPrepare("tx1", ptPlayers("alice", 1)...)); got != "err" {
		t.Fatalf("voted %q without a journal record", got)
	}
	if got := f.h.calls("tx1"); got != "p1 c0 a1" { // the reservation was released
		t.Fatalf("handler calls = %s", got)
	}
	if len(f.p.InDoubt()) != 0 || f.p.HighestToken("alice") != 0 {
		t.Fatal("unjournaled prepare left state behind")
	}
	fj.mu.Lock()
	fj.fail = false
	fj.mu.Unlock()
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 YES") // the resend works

	f.h.failCommit = errors.New("game busy")
	if got := f.do(ptCommit("tx1")); got != "err" {
		t.Fatalf("acked %q a commit the game failed", got)
	}
	f.h.failCommit = nil
	f.expect(ptCommit("tx1"), "ack tx1 COMMITTED")
	if got := f.h.calls("tx1"); got != "p2 c1 a1" {
		t.Fatalf("handler calls = %s", got)
	}
}

// TestParticipantConcurrentDuplicates: many goroutines deliver shuffled duplicates of
// every command at once; every effect still happens exactly once.
func TestParticipantConcurrentDuplicates(t *testing.T) {
	f := newPtFixture(t, nil)
	const txns, workers = 20, 8
	txid := func(i int) string { return fmt.Sprintf("tx%02d", i) }
	f.h.reject[txid(0)] = []*smv1.PlayerRejection{{PlayerId: "p0", Code: "BUSY"}}
	phase := func(mk func(i int) *smv1.ShardCommand) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for _, i := range r.Perm(txns) {
					if _, err := f.p.HandleCommand(context.Background(), mk(i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	phase(func(i int) *smv1.ShardCommand { return ptPrepare(txid(i), ptPlayers(fmt.Sprintf("p%d", i), i+1)...) })
	phase(func(i int) *smv1.ShardCommand {
		if i%2 == 0 {
			return ptAbort(txid(i))
		}
		return ptCommit(txid(i))
	})
	for i := range txns {
		want := "p1 c1 a0"
		switch {
		case i == 0:
			want = "p1 c0 a0"
		case i%2 == 0:
			want = "p1 c0 a1"
		}
		if got := f.h.calls(txid(i)); got != want {
			t.Errorf("%s: handler calls = %s, want %s", txid(i), got, want)
		}
	}
	if s := f.p.Stats(); s.Prepares != txns*workers || s.Commits != txns/2 || s.Aborts != txns/2 || s.Anomalies != 0 {
		t.Fatalf("stats = %+v", s)
	}
}
