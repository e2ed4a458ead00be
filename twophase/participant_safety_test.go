package twophase

import (
	"context"
	"errors"
	"slices"
	"testing"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// A Prepare the handler cannot answer sends no vote and journals nothing; the next
// delivery asks the handler again and votes on its answer.
func TestParticipantPrepareErrorIsRetried(t *testing.T) {
	f := newPtFixture(t, nil)
	down := errors.New("player database unreachable")
	f.h.failPrepare = down
	r, err := f.p.HandleCommand(context.Background(), ptPrepare("tx1", ptPlayers("a", 1)...))
	if r != nil || !errors.Is(err, ErrPrepareDeferred) || !errors.Is(err, down) {
		t.Fatalf("reply %v, err %v: want no reply and ErrPrepareDeferred wrapping the handler's error", r, err)
	}
	if _, found, _ := f.j.Get("tx1"); found {
		t.Fatal("a deferred prepare was journaled")
	}
	if got := f.p.InDoubt(); len(got) != 0 {
		t.Fatalf("in doubt after a deferred prepare: %v", got)
	}
	f.h.failPrepare = nil
	if got := f.do(ptPrepare("tx1", ptPlayers("a", 1)...)); got != "vote tx1 YES" {
		t.Fatalf("retry: %s", got)
	}
	// The player was not left claimed by the failed attempt: another txn can hold it
	// once tx1 is decided.
	if got := f.do(ptAbort("tx1")); got != "ack tx1 ABORTED" {
		t.Fatalf("abort: %s", got)
	}
	if got := f.do(ptPrepare("tx2", ptPlayers("a", 2)...)); got != "vote tx2 YES" {
		t.Fatalf("after the abort: %s", got)
	}
	if st := f.p.Stats(); st.Deferred != 1 || f.h.calls("tx1") != "p2 c0 a1" {
		t.Fatalf("stats %+v, calls %s", st, f.h.calls("tx1"))
	}
}

// A Prepare from an older coordinator term than one already heard from is a NO
// (STALE_TERM) that reserves nothing; the handler is not asked.
func TestParticipantStaleTerm(t *testing.T) {
	f := newPtFixture(t, nil)
	prep := func(txid string, term uint64, players ...*smv1.ShardPlayer) string {
		c := ptPrepare(txid, players...)
		c.GetPrepare().Term = term
		r, err := f.p.HandleCommand(context.Background(), c)
		if err != nil {
			return "err"
		}
		v := r.GetVote()
		out := v.GetVote().String()
		for _, rj := range v.GetRejections() {
			out += " " + rj.GetCode()
		}
		return out
	}
	if got := prep("tx1", 7, ptPlayers("a", 1)...); got != "VOTE_YES" {
		t.Fatalf("term 7: %s", got)
	}
	if got := prep("tx2", 6, ptPlayers("b", 1)...); got != "VOTE_NO STALE_TERM" {
		t.Fatalf("term 6 after 7: %s", got)
	}
	if f.h.calls("tx2") != "p0 c0 a0" {
		t.Fatalf("the handler was asked about a stale term's prepare: %s", f.h.calls("tx2"))
	}
	// A repeat answers from the journal, and a newer term is served.
	if got := prep("tx2", 6, ptPlayers("b", 1)...); got != "VOTE_NO STALE_TERM" {
		t.Fatalf("repeat: %s", got)
	}
	if got := prep("tx3", 8, ptPlayers("b", 2)...); got != "VOTE_YES" {
		t.Fatalf("term 8: %s", got)
	}
	// Commits of any term are applied: a decision is in the log whoever sends it.
	c := ptCommit("tx1", ptPlayers("a", 1)...)
	c.GetCommit().Term = 2
	if r, err := f.p.HandleCommand(context.Background(), c); err != nil || r.GetAck().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("old term's commit: %v %v", r, err)
	}
	if st := f.p.Stats(); st.StaleTerms != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Commit hands the handler only the players whose tokens are current: one the shard
// has since seen with a higher token is left out and counted, and a commit with no
// YES on record raises the tokens it carries durably, across a restart.
func TestParticipantCommitFences(t *testing.T) {
	f := newPtFixture(t, nil)
	// No YES on record for tx1 (a lost journal, say); b is known at token 9.
	if err := f.p.Fence("b", 9); err != nil {
		t.Fatal(err)
	}
	if got := f.do(ptCommit("tx1", ptPlayers("a", 5, "b", 3)...)); got != "ack tx1 COMMITTED" {
		t.Fatalf("commit: %s", got)
	}
	if got := f.h.committed["tx1"]; !slices.Equal(got, []string{"a"}) {
		t.Fatalf("handler committed %v, want only a", got)
	}
	if st := f.p.Stats(); st.Fenced != 1 {
		t.Fatalf("stats %+v", st)
	}
	f.restart()
	if h := f.p.HighestToken("a"); h != 5 {
		t.Fatalf("a's token after restart: %d, want 5 (raised by the commit)", h)
	}
	if err := f.p.Fence("a", 4); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("fence below the committed token: %v", err)
	}
}

// A nil Clock is the machine's clock, so a game needs nothing internal to start.
func TestParticipantNilClock(t *testing.T) {
	p, err := NewParticipant(ParticipantConfig{ShardID: "s1", Handler: newPtHandler(), Journal: NewMemJournal()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.HandleCommand(context.Background(), ptPrepare("tx1", ptPlayers("a", 1)...))
	if err != nil || r.GetVote().GetVote() != smv1.VoteValue_VOTE_YES {
		t.Fatalf("%v %v", r, err)
	}
}
