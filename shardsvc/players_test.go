package shardsvc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestWorld(t *testing.T, clk clock.Clock, tweak func(*WorldConfig)) *World {
	t.Helper()
	c := DefaultWorldConfig()
	c.ShardID, c.Region, c.Clock, c.Players, c.Seed = "s1", "eu-west", clk, 200, 7
	if tweak != nil {
		tweak(&c)
	}
	w, err := NewWorld(c)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sp(id string, token uint64) *smv1.ShardPlayer {
	return &smv1.ShardPlayer{PlayerId: id, FencingToken: token}
}

// inState returns up to n non-regular players in state st, advancing the clock until
// enough are found.
func inState(t *testing.T, w *World, fake *clock.Fake, st PlayerState, n int) []string {
	t.Helper()
	for i := 0; i < 200; i++ {
		var out []string
		for _, p := range w.Snapshot().Players[w.cfg.Regulars:] {
			if p.State == st {
				out = append(out, p.ID)
			}
		}
		if len(out) >= n {
			return out[:n]
		}
		fake.Advance(time.Second)
	}
	t.Fatalf("fewer than %d players ever %s", n, st)
	return nil
}

func stateOf(w *World, id string) PlayerSnapshot {
	for _, p := range w.Snapshot().Players {
		if p.ID == id {
			return p
		}
	}
	return PlayerSnapshot{}
}

func TestWorldConfigValidateNamesField(t *testing.T) {
	for field, tweak := range map[string]func(*WorldConfig){
		"ShardID":    func(c *WorldConfig) { c.ShardID = "" },
		"Clock":      func(c *WorldConfig) { c.Clock = nil },
		"Players":    func(c *WorldConfig) { c.Players = 0 },
		"Regulars":   func(c *WorldConfig) { c.Regulars = c.Players + 1 },
		"MatchTTL":   func(c *WorldConfig) { c.MatchTTL = 0 },
		"RefuseRate": func(c *WorldConfig) { c.RefuseRate = 2 },
		"Life.Idle":  func(c *WorldConfig) { c.Life.Idle = 0 },
	} {
		c := DefaultWorldConfig()
		c.ShardID, c.Region, c.Clock = "s1", "eu-west", clock.NewFake(epoch)
		tweak(&c)
		if _, err := NewWorld(c); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming it", field, err)
		}
	}
}

func TestWorldIsDeterministic(t *testing.T) {
	a := newTestWorld(t, clock.NewFake(epoch), nil)
	b := newTestWorld(t, clock.NewFake(epoch), nil)
	sa, sb := a.Snapshot(), b.Snapshot()
	for i := range sa.Players {
		if sa.Players[i].State != sb.Players[i].State {
			t.Fatalf("player %s: %s vs %s", sa.Players[i].ID, sa.Players[i].State, sb.Players[i].State)
		}
	}
	c := newTestWorld(t, clock.NewFake(epoch), func(c *WorldConfig) { c.Seed = 8 })
	if fmt.Sprint(c.Snapshot().Count) == fmt.Sprint(sa.Count) && c.Regulars()[0].MMR == a.Regulars()[0].MMR {
		t.Error("another seed made the same world")
	}
}

func TestWorldLife(t *testing.T) {
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.Players = 2000 })
	before := w.Snapshot()
	fake.Advance(2 * time.Minute)
	after := w.Snapshot()
	changed := 0
	for i := range before.Players {
		if before.Players[i].State != after.Players[i].State {
			changed++
		}
	}
	if changed < 500 {
		t.Errorf("only %d of 2000 players changed state in two minutes", changed)
	}
	for _, st := range []PlayerState{StateOffline, StateIdle, StateDungeon, StateTrading, StateTransferring} {
		if after.Count[st] == 0 {
			t.Errorf("nobody is %s: %v", st, after.Count)
		}
	}
	if idle := float64(after.Count[StateIdle]) / 2000; idle < 0.4 || idle > 0.85 {
		t.Errorf("idle share %.2f, want a busy but playable world: %v", idle, after.Count)
	}
	for _, p := range after.Players[:w.cfg.Regulars] {
		if p.State != StateIdle {
			t.Errorf("regular %s is %s", p.ID, p.State)
		}
	}
}

func TestPrepareCommitEndMatch(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	ids := inState(t, w, fake, StateIdle, 2)
	if rej, _ := w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(ids[0], 10), sp(ids[1], 10)}); rej != nil {
		t.Fatalf("prepare idle players: %v", rej)
	}
	if st := stateOf(w, ids[0]); st.State != StateReserved || st.TxID != "tx-1" {
		t.Fatalf("after prepare: %+v", st)
	}
	if rej, _ := w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(ids[0], 10), sp(ids[1], 10)}); rej != nil {
		t.Fatalf("repeated prepare: %v", rej)
	}
	rej, _ := w.Prepare(ctx, "tx-2", []*smv1.ShardPlayer{sp(ids[0], 20)})
	if len(rej) != 1 || rej[0].GetCode() != twophase.RejectReserved {
		t.Fatalf("prepare of a reserved player: %v", rej)
	}
	fake.Advance(time.Hour) // a reserved player's life is frozen
	if st := stateOf(w, ids[1]); st.State != StateReserved {
		t.Fatalf("reserved player moved on: %+v", st)
	}
	for i := 0; i < 2; i++ { // the second Commit is a repeat
		if err := w.Commit(ctx, "tx-1", []*smv1.ShardPlayer{sp(ids[0], 10), sp(ids[1], 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := stateOf(w, ids[0]); st.State != StateInMatch || st.TxID != "tx-1" || st.Token != 10 || len(st.Matches) != 1 {
		t.Fatalf("after commit: %+v", st)
	}
	rej, _ = w.Prepare(ctx, "tx-3", []*smv1.ShardPlayer{sp(ids[0], 30)})
	if len(rej) != 1 || rej[0].GetCode() != CodeInMatch {
		t.Fatalf("prepare of a player in a match: %v", rej)
	}
	if !w.EndMatch("tx-1") || w.EndMatch("tx-1") {
		t.Fatal("EndMatch should end a live match once")
	}
	if st := stateOf(w, ids[0]); st.State != StateIdle || st.TxID != "" {
		t.Fatalf("after the match: %+v", st)
	}
	if err := w.Commit(ctx, "tx-1", []*smv1.ShardPlayer{sp(ids[0], 10)}); err != nil || stateOf(w, ids[0]).State == StateInMatch {
		t.Fatalf("a repeated commit of an ended match played it again: %v", err)
	}
	s := w.Stats()
	if s.Commits != 1 || s.Ended != 1 || s.Anomalies != 0 || s.DoubleBooked != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// TestEndMatchBeforeCommit: a host may release a match before a slow Commit reaches
// the shard; the Commit then must not start a match nobody plays.
func TestEndMatchBeforeCommit(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	id := inState(t, w, fake, StateIdle, 1)[0]
	_, _ = w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)})
	if w.EndMatch("tx-1") {
		t.Fatal("EndMatch of a match not started reported it live")
	}
	if err := w.Commit(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)}); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(w, id); st.State != StateIdle {
		t.Fatalf("a commit after the match ended: %+v", st)
	}
}

func TestPrepareRejectsWithTheShardsTruth(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0; c.Players = 500 })
	for st, code := range map[PlayerState]string{StateOffline: CodeOffline, StateDungeon: CodeBusy,
		StateTrading: CodeBusy, StateTransferring: CodeTransferring} {
		id := inState(t, w, fake, st, 1)[0]
		idle := inState(t, w, fake, StateIdle, 1)[0]
		if stateOf(w, id).State != st {
			continue // moved on while we looked for an idle player
		}
		rej, _ := w.Prepare(ctx, "tx-"+code, []*smv1.ShardPlayer{sp(idle, 1), sp(id, 1)})
		if len(rej) != 1 || rej[0].GetPlayerId() != id || rej[0].GetCode() != code {
			t.Errorf("%s player: rejections %v, want one %s", st, rej, code)
		}
		if got := stateOf(w, idle).State; got != StateIdle {
			t.Errorf("a NO vote still reserved the idle player: %s", got)
		}
	}
	rej, _ := w.Prepare(ctx, "tx-x", []*smv1.ShardPlayer{sp("nobody", 1)})
	if len(rej) != 1 || rej[0].GetCode() != CodeUnknown {
		t.Errorf("unknown player: %v", rej)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 1 })
	id := inState(t, w, fake, StateIdle, 1)[0]
	rej, _ := w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)})
	if len(rej) != 1 || rej[0].GetCode() != CodeRefused {
		t.Fatalf("got %v, want REFUSED", rej)
	}
	if rej, _ := w.Prepare(ctx, "tx-2", []*smv1.ShardPlayer{sp(w.Regulars()[0].ID, 1)}); rej != nil {
		t.Fatalf("a regular refused: %v", rej)
	}
	w2 := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0.5 })
	first := w2.refuses(w2.players[50], "tx-9")
	for i := 0; i < 10; i++ {
		if w2.refuses(w2.players[50], "tx-9") != first {
			t.Fatal("a player changed its mind about the same match")
		}
	}
}

func TestAbortReleases(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	id := inState(t, w, fake, StateIdle, 1)[0]
	if rej, _ := w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)}); rej != nil {
		t.Fatal(rej)
	}
	for i := 0; i < 2; i++ {
		if err := w.Abort(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if st := stateOf(w, id); st.State != StateIdle || st.TxID != "" {
		t.Fatalf("after abort: %+v", st)
	}
	// An Abort of something else leaves the player alone.
	_, _ = w.Prepare(ctx, "tx-2", []*smv1.ShardPlayer{sp(id, 2)})
	_ = w.Abort(ctx, "tx-3", []*smv1.ShardPlayer{sp(id, 3)})
	if st := stateOf(w, id); st.State != StateReserved || st.TxID != "tx-2" {
		t.Fatalf("abort of another txn touched the player: %+v", st)
	}
	if w.Stats().Aborts != 1 {
		t.Errorf("aborts = %d, want 1", w.Stats().Aborts)
	}
}

func TestMatchTTL(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0; c.MatchTTL = 10 * time.Second })
	id := inState(t, w, fake, StateIdle, 1)[0]
	_, _ = w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)})
	_ = w.Commit(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 1)})
	fake.Advance(8 * time.Second)
	if !w.RenewMatch("tx-1") {
		t.Fatal("renew of a live match failed")
	}
	fake.Advance(8 * time.Second) // 16s after commit, 8s after the renew
	if st := stateOf(w, id); st.State != StateInMatch {
		t.Fatalf("renewed match ended early: %+v", st)
	}
	fake.Advance(3 * time.Second)
	if st := stateOf(w, id); st.State != StateIdle {
		t.Fatalf("match outlived its TTL: %+v", st)
	}
	if w.RenewMatch("tx-1") || w.Stats().Expired != 1 {
		t.Errorf("expired match: renew should fail and Expired be 1: %+v", w.Stats())
	}
}

func TestCommitFencing(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	ids := inState(t, w, fake, StateIdle, 2)
	a, b := ids[0], ids[1]
	// a: played match tx-5 (token 50); a late commit of older tx-4 must not apply.
	_ = w.Commit(ctx, "tx-5", []*smv1.ShardPlayer{sp(a, 50)})
	w.EndMatch("tx-5")
	_ = w.Commit(ctx, "tx-4", []*smv1.ShardPlayer{sp(a, 40)})
	if st := stateOf(w, a); st.State == StateInMatch {
		t.Fatalf("a stale token was applied: %+v", st)
	}
	// b: reserved by tx-6 (token 60), then committed by a newer tx-7 (token 70); a
	// late commit of tx-6 leaves b in tx-7.
	_, _ = w.Prepare(ctx, "tx-6", []*smv1.ShardPlayer{sp(b, 60)})
	_ = w.Commit(ctx, "tx-7", []*smv1.ShardPlayer{sp(b, 70)})
	_ = w.Commit(ctx, "tx-6", []*smv1.ShardPlayer{sp(b, 60)})
	if st := stateOf(w, b); st.State != StateInMatch || st.TxID != "tx-7" {
		t.Fatalf("a stale token was applied: %+v", st)
	}
	if s := w.Stats(); s.Fenced != 2 { // tx-4 for a, tx-6 for b
		t.Errorf("stats: %+v", s)
	}
}

func TestOverlappingCommitsShowAsDoubleBooking(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	id := inState(t, w, fake, StateIdle, 1)[0]
	_, _ = w.Prepare(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 10)})
	_ = w.Commit(ctx, "tx-1", []*smv1.ShardPlayer{sp(id, 10)})
	_ = w.Commit(ctx, "tx-2", []*smv1.ShardPlayer{sp(id, 20)}) // a broken coordinator
	st := stateOf(w, id)
	if len(st.Matches) != 2 || w.Stats().DoubleBooked != 1 {
		t.Fatalf("player in two matches not shown: %+v, %+v", st, w.Stats())
	}
	w.EndMatch("tx-2")
	if st := stateOf(w, id); st.State != StateInMatch || st.TxID != "tx-1" || len(st.Matches) != 1 {
		t.Fatalf("after one of two matches ended: %+v", st)
	}
}

func TestPickIdle(t *testing.T) {
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, nil)
	rng := newRand(1)
	got := w.PickIdle(rng, 5, func(p Profile) bool { return p.MMR >= 1400 })
	if len(got) != 5 {
		t.Fatalf("picked %d, want 5", len(got))
	}
	seen := map[string]bool{}
	for _, p := range got {
		st := stateOf(w, p.ID)
		if st.State != StateIdle || p.MMR < 1400 || seen[p.ID] || p.ID == w.Regulars()[0].ID {
			t.Errorf("bad pick %+v (%s)", p, st.State)
		}
		seen[p.ID] = true
		if p.LatencyMs["eu-west"] > 45 || p.LatencyMs["us-east"] < 50 {
			t.Errorf("latencies %v for an eu-west player", p.LatencyMs)
		}
	}
	if n := len(w.IdlePlayers()); n < 50 {
		t.Errorf("%d idle players of 200", n)
	}
}

// TestWorldBehindParticipant runs the World as a participant's handler: the fence is
// the participant's, and its journal and the World agree.
func TestWorldBehindParticipant(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(epoch)
	w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate = 0 })
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: "s1", Handler: w, Journal: twophase.NewMemJournal(), Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	ids := inState(t, w, fake, StateIdle, 2)
	players := []*smv1.ShardPlayer{sp(ids[0], 100), sp(ids[1], 100)}
	r, err := p.HandleCommand(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: "tx-1", ShardId: "s1", Players: players}}})
	if err != nil || r.GetVote().GetVote() != smv1.VoteValue_VOTE_YES {
		t.Fatalf("prepare: %v %v", r, err)
	}
	if _, err := p.HandleCommand(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{Txid: "tx-1", ShardId: "s1", Players: players}}}); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(w, ids[0]); st.State != StateInMatch || p.HighestToken(ids[0]) != 100 {
		t.Fatalf("after commit: %+v, token %d", st, p.HighestToken(ids[0]))
	}
	// A prepare of a busy player is a NO with the World's code.
	r, _ = p.HandleCommand(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: "tx-2", ShardId: "s1",
		Players: []*smv1.ShardPlayer{sp(ids[0], 200)}}}})
	if r.GetVote().GetVote() != smv1.VoteValue_VOTE_NO || r.GetVote().GetRejections()[0].GetCode() != CodeInMatch {
		t.Fatalf("vote for a player in a match: %v", r)
	}
}

func TestWorldConcurrentUse(t *testing.T) {
	ctx := context.Background()
	w := newTestWorld(t, clock.NewReal(), func(c *WorldConfig) { c.MatchTTL = 5 * time.Millisecond })
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := newRand(uint64(g))
			for i := 0; i < 200; i++ {
				txid := fmt.Sprintf("tx-%d-%d", g, i)
				ps := w.PickIdle(rng, 2, nil)
				var sps []*smv1.ShardPlayer
				for _, p := range ps {
					sps = append(sps, sp(p.ID, uint64(g*1000+i)))
				}
				if rej, _ := w.Prepare(ctx, txid, sps); rej != nil {
					continue
				}
				if i%3 == 0 {
					_ = w.Abort(ctx, txid, sps)
					continue
				}
				_ = w.Commit(ctx, txid, sps)
				if i%2 == 0 {
					w.EndMatch(txid)
				}
				_ = w.Snapshot()
			}
		}()
	}
	wg.Wait()
}
