package twophase

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// fzHandler is a game that keeps its own reservations (BUSY if a player is taken) and
// records every effect, so the fuzz test can check them.
type fzHandler struct {
	mu       sync.Mutex
	voteNo   map[string]bool   // txids the game will refuse
	reserved map[string]string // player → txid
	yes      map[string]bool   // txids the game said YES to
	commits  map[string]int
	aborts   map[string]int
}

func (h *fzHandler) Prepare(_ context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var rej []*smv1.PlayerRejection
	for _, p := range players {
		if other, ok := h.reserved[p.GetPlayerId()]; ok && other != txid {
			rej = append(rej, &smv1.PlayerRejection{PlayerId: p.GetPlayerId(), Code: "BUSY"})
		}
	}
	if h.voteNo[txid] {
		rej = append(rej, &smv1.PlayerRejection{Code: "REFUSED"})
	}
	if len(rej) > 0 {
		return rej, nil
	}
	for _, p := range players {
		h.reserved[p.GetPlayerId()] = txid
	}
	h.yes[txid] = true
	return nil, nil
}

func (h *fzHandler) release(txid string) {
	for p, t := range h.reserved {
		if t == txid {
			delete(h.reserved, p)
		}
	}
}

func (h *fzHandler) Commit(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commits[txid]++
	h.release(txid)
	return nil
}

func (h *fzHandler) Abort(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.aborts[txid]++
	h.release(txid)
	return nil
}

// FuzzParticipant feeds random command sequences (with duplicates, restarts, fences,
// compactions and recoveries) into a Participant and checks the invariants after
// every step: it never panics, no txid is both committed and aborted, the game
// commits a txid at most once and only aborts what it said YES to, and no player is in
// two prepared transactions.
//
// Input: pairs (op, arg). txid = t(arg%4); its players overlap with its neighbours'
// so that contention happens; tokens come from arg>>2.
func FuzzParticipant(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0})                   // prepare, commit
	f.Add([]byte{2, 1, 0, 1, 3, 0})             // abort overtakes prepare, duplicate
	f.Add([]byte{0, 0x10, 1, 0, 2, 0})          // NO vote, then a (bad) commit, abort
	f.Add([]byte{0, 4, 0, 1, 4, 0, 7, 0, 7, 4}) // prepare, restart, recover
	f.Add([]byte{0, 0xfc, 1, 0, 5, 0x10, 0, 8}) // high token, fence, stale prepare
	f.Add([]byte{1, 2, 2, 2, 6, 0, 0, 2, 3, 0}) // conflicting decisions, compact
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		h := &fzHandler{voteNo: map[string]bool{}, reserved: map[string]string{}, yes: map[string]bool{},
			commits: map[string]int{}, aborts: map[string]int{}}
		j := NewMemJournal()
		clk := clock.NewFake(ptEpoch)
		start := func() *Participant {
			p, err := NewParticipant(ParticipantConfig{ShardID: "s1", Handler: h, Journal: j, Clock: clk, TombstoneRetention: 1000 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		p := start()
		acked := map[string]map[smv1.Outcome]bool{}
		var last *smv1.ShardCommand
		for i := 0; i+1 < len(in); i += 2 {
			op, arg := in[i]%8, in[i+1]
			k := int(arg % 4)
			txid := fmt.Sprintf("t%d", k)
			tok := uint64(arg >> 2)
			players := []*smv1.ShardPlayer{
				{PlayerId: fmt.Sprintf("p%d", k%3), FencingToken: tok},
				{PlayerId: fmt.Sprintf("p%d", (k+1)%3), FencingToken: tok},
			}
			var cmd *smv1.ShardCommand
			switch op {
			case 0:
				h.mu.Lock()
				h.voteNo[txid] = arg&0x10 != 0
				h.mu.Unlock()
				cmd = &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: txid, ShardId: "s1", Players: players}}}
			case 1:
				cmd = &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: txid, ShardId: "s1", Players: players}}}
			case 2:
				cmd = &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{Txid: txid, ShardId: "s1", Players: players}}}
			case 3:
				cmd = last
			case 4:
				p = start()
			case 5:
				_ = p.Fence(players[0].GetPlayerId(), tok)
			case 6:
				clk.Advance(time.Minute)
				if _, err := p.Compact(); err != nil {
					t.Fatal(err)
				}
			case 7:
				out := []smv1.Outcome{smv1.Outcome_OUTCOME_COMMITTED, smv1.Outcome_OUTCOME_ABORTED, smv1.Outcome_OUTCOME_PENDING}[arg%3]
				q := ptQuerier{}
				for _, id := range p.InDoubt() {
					q[id] = out
				}
				if err := p.Recover(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if cmd != nil {
				last = cmd
				r, err := p.HandleCommand(ctx, cmd)
				if (r == nil) == (err == nil) {
					t.Fatalf("step %d: reply %v with error %v", i/2, r, err)
				}
				if v := r.GetVote(); v != nil && (v.GetVote() == smv1.VoteValue_VOTE_NO) != (len(v.GetRejections()) > 0) {
					t.Fatalf("step %d: vote %v: a NO must carry reasons and a YES none", i/2, v)
				}
				if a := r.GetAck(); a != nil {
					if acked[a.GetTxid()] == nil {
						acked[a.GetTxid()] = map[smv1.Outcome]bool{}
					}
					acked[a.GetTxid()][a.GetOutcome()] = true
				}
			}
			fzCheck(t, i/2, h, j, acked)
		}
	})
}

func fzCheck(t *testing.T, step int, h *fzHandler, j Journal, acked map[string]map[smv1.Outcome]bool) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range 4 {
		txid := fmt.Sprintf("t%d", k)
		e, found, err := j.Get(txid)
		if err != nil {
			t.Fatal(err)
		}
		c, a := h.commits[txid], h.aborts[txid]
		switch {
		case c > 1:
			t.Fatalf("step %d: %s committed %d times", step, txid, c)
		case c > 0 && a > 0:
			t.Fatalf("step %d: %s both committed and aborted", step, txid)
		case a > 0 && !h.yes[txid]:
			t.Fatalf("step %d: %s aborted by the game, which never said YES", step, txid)
		case c > 0 && (!found || e.State != JournalCommitted):
			t.Fatalf("step %d: %s committed but journal says %v", step, txid, e.State)
		case a > 0 && (!found || e.State != JournalAborted):
			t.Fatalf("step %d: %s aborted but journal says %v", step, txid, e.State)
		case acked[txid][smv1.Outcome_OUTCOME_COMMITTED] && acked[txid][smv1.Outcome_OUTCOME_ABORTED]:
			t.Fatalf("step %d: %s acked both COMMITTED and ABORTED", step, txid)
		}
	}
	entries, err := j.List()
	if err != nil {
		t.Fatal(err)
	}
	holder := map[string]string{}
	for _, e := range entries {
		if e.State != JournalPrepared {
			continue
		}
		for _, p := range e.Players {
			if other, ok := holder[p.GetPlayerId()]; ok && other != e.TxID {
				t.Fatalf("step %d: player %s prepared in %s and %s", step, p.GetPlayerId(), other, e.TxID)
			}
			holder[p.GetPlayerId()] = e.TxID
		}
	}
}
