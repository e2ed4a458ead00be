package shard_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
)

// game is a shard's player state as a game would keep it: who is reserved by which
// match and who plays in which. failPrepares makes the next n Prepares fail, as an
// unreachable database would.
type game struct {
	mu           sync.Mutex
	reserved     map[string]string // player → txid
	playing      map[string]string
	failPrepares int
	prepareCalls int
}

func newGame() *game { return &game{reserved: map[string]string{}, playing: map[string]string{}} }

func (g *game) Prepare(_ context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.prepareCalls++
	if g.failPrepares > 0 {
		g.failPrepares--
		return nil, errors.New("player database unreachable")
	}
	var rej []*smv1.PlayerRejection
	for _, p := range players {
		if g.playing[p.GetPlayerId()] != "" {
			rej = append(rej, &smv1.PlayerRejection{PlayerId: p.GetPlayerId(), Code: "IN_MATCH"})
		}
	}
	if len(rej) > 0 {
		return rej, nil
	}
	for _, p := range players {
		g.reserved[p.GetPlayerId()] = txid
	}
	return nil, nil
}

func (g *game) Commit(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range players {
		delete(g.reserved, p.GetPlayerId())
		g.playing[p.GetPlayerId()] = txid
	}
	return nil
}

func (g *game) Abort(_ context.Context, _ string, players []*smv1.ShardPlayer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range players {
		delete(g.reserved, p.GetPlayerId())
	}
	return nil
}

func (g *game) matchOf(player string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.playing[player]
}

// duel is a 1v1 between player a on s1 and player b on s2.
func duel(id, a, b string) *smv1.Proposal {
	pl := func(pid, sh string) *smv1.Player {
		return &smv1.Player{PlayerId: pid, ShardId: sh, Attributes: &smv1.PlayerAttributes{Mmr: 1500, Region: "eu-west"}}
	}
	return &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: 60_000,
		Teams: []*smv1.Team{{Players: []*smv1.Player{pl(a, "s1")}}, {Players: []*smv1.Player{pl(b, "s2")}}}}
}

// Two shards started the one-call way play a match proposed through a real
// coordinator cluster over JetStream; a shard whose database fails its first Prepares
// still votes once it recovers, within the prepare timeout; a restarted shard, on the
// same journal, keeps its fencing tokens.
func TestShardsPlayMatches(t *testing.T) {
	cl := natsapitest.Start(t, natsapitest.Options{ShardsOverNATS: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	games := map[string]*game{"s1": newGame(), "s2": newGame()}
	shards := map[string]*shard.Shard{}
	for _, id := range []string{"s1", "s2"} {
		s, err := shard.Start(ctx, shard.Config{ID: id, Conn: cl.Connect(), Game: games[id],
			JournalPath: filepath.Join(dir, id, "journal.db"), Region: "eu-west", Capacity: 100})
		if err != nil {
			t.Fatal(err)
		}
		shards[id] = s
		t.Cleanup(func() { s.Stop(context.Background()) })
	}
	cli, err := client.New(client.Config{Conn: cl.Connect()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	d, err := cli.Propose(ctx, duel("m1", "alice", "bob"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("m1: %v, %v", d, err)
	}
	testutil.WaitUntil(t, 10*time.Second, "both games to play m1", func() bool {
		return games["s1"].matchOf("alice") == d.GetTxid() && games["s2"].matchOf("bob") == d.GetTxid()
	})

	games["s2"].mu.Lock()
	games["s2"].failPrepares = 2
	games["s2"].mu.Unlock()
	d, err = cli.Propose(ctx, duel("m2", "carol", "dave"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("m2 after two failed prepares: %v, %v", d, err)
	}
	if st := shards["s2"].Participant().Stats(); st.Deferred != 2 {
		t.Errorf("s2 deferred %d prepares, want 2: %+v", st.Deferred, st)
	}

	// Restart s1 on its journal: the highest token it saw for alice survives.
	tok := shards["s1"].Participant().HighestToken("alice")
	if tok == 0 {
		t.Fatal("no token recorded for alice")
	}
	shards["s1"].Stop(ctx)
	s1, err := shard.Start(ctx, shard.Config{ID: "s1", Conn: cl.Connect(), Game: games["s1"],
		JournalPath: filepath.Join(dir, "s1", "journal.db"), Region: "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Stop(context.Background())
	if got := s1.Participant().HighestToken("alice"); got != tok {
		t.Fatalf("alice's token after restart: %d, want %d", got, tok)
	}
	d, err = cli.Propose(ctx, duel("m3", "erin", "frank"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("m3 after the restart: %v, %v", d, err)
	}
}

// Bad settings are a typed error, and nothing is opened.
func TestStartRejectsBadConfig(t *testing.T) {
	cl := natsapitest.Start(t, natsapitest.Options{ShardsOverNATS: true, Nodes: 1})
	nc := cl.Connect()
	dir := t.TempDir()
	for name, cfg := range map[string]shard.Config{
		"no id":             {Conn: nc, Game: newGame(), JournalPath: filepath.Join(dir, "a")},
		"no conn":           {ID: "s1", Game: newGame(), JournalPath: filepath.Join(dir, "b")},
		"no game":           {ID: "s1", Conn: nc, JournalPath: filepath.Join(dir, "c")},
		"no journal":        {ID: "s1", Conn: nc, Game: newGame()},
		"negative capacity": {ID: "s1", Conn: nc, Game: newGame(), JournalPath: filepath.Join(dir, "d"), Capacity: -1},
		"bad id":            {ID: "s.1", Conn: nc, Game: newGame(), JournalPath: filepath.Join(dir, "e")},
	} {
		s, err := shard.Start(context.Background(), cfg)
		if err == nil {
			s.Stop(context.Background())
			t.Errorf("%s: started", name)
			continue
		}
		if !errors.Is(err, shard.ErrConfig) {
			t.Errorf("%s: %v does not match ErrConfig", name, err)
		}
		if cfg.JournalPath != "" {
			if _, serr := os.Stat(cfg.JournalPath); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("%s: the journal was created (%v)", name, serr)
			}
		}
	}
}
