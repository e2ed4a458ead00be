package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/conformance"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// openGame accepts every player: it keeps no state of its own, so every answer the
// harness checks is the SDK's.
type openGame struct{}

func (openGame) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (openGame) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (openGame) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

func players(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p%02d", i)
	}
	return out
}

// starter starts shard s1 on nc with its journal at path, and returns how to stop it.
type starter func(ctx context.Context, nc *nats.Conn, path string) (stop func(), err error)

// sdkShard is shard.Start with wrap in front of the Participant (nil: as it ships).
func sdkShard(wrap func(twophase.CommandHandler) twophase.CommandHandler) starter {
	return func(ctx context.Context, nc *nats.Conn, path string) (func(), error) {
		s, err := shard.Start(ctx, shard.Config{ID: "s1", Conn: nc, Game: openGame{}, JournalPath: path, Wrap: wrap})
		if err != nil {
			return nil, err
		}
		return func() { s.Stop(context.Background()) }, nil
	}
}

// runShard runs the harness against the shard begin starts, restartable on the same
// journal, and returns the report.
func runShard(t *testing.T, srv *server.Server, begin starter) conformance.Report {
	t.Helper()
	nc, _ := natstest.Connect(t, srv)
	journal := filepath.Join(t.TempDir(), "s1.journal")
	var mu sync.Mutex
	var cur func()
	start := func(ctx context.Context) error {
		s, err := begin(ctx, nc, journal)
		if err != nil {
			return err
		}
		mu.Lock()
		cur = s
		mu.Unlock()
		return nil
	}
	stop := func() {
		mu.Lock()
		s := cur
		cur = nil
		mu.Unlock()
		if s != nil {
			s()
		}
	}
	t.Cleanup(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- start(ctx) }() // the shard registers with the harness, which must be up
	rep, err := conformance.Run(ctx, conformance.Config{Conn: nc, ShardID: "s1", Players: players(conformance.MinPlayers),
		ReplyTimeout: 10 * time.Second, Silence: time.Second, RegisterTimeout: 30 * time.Second,
		Restart: func(ctx context.Context) error {
			stop()
			go func() { started <- start(ctx) }()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func statusOf(rep conformance.Report, name string) conformance.Result {
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	return conformance.Result{Name: name, Status: "MISSING"}
}

// The shard SDK as it ships passes every check, recovery included.
func TestSDKShardConforms(t *testing.T) {
	rep := runShard(t, natstest.Start(t), sdkShard(nil))
	for _, r := range rep.Results {
		if r.Status != conformance.Pass {
			t.Errorf("%s: %s %s", r.Name, r.Status, r.Detail)
		}
	}
	if len(rep.Results) != 13 || !rep.Passed() {
		t.Errorf("%d results, passed %v", len(rep.Results), rep.Passed())
	}
}

// brokenHandler breaks one rule in front of a correct Participant.
type brokenHandler struct {
	next twophase.CommandHandler
	fn   func(ctx context.Context, next twophase.CommandHandler, cmd *smv1.ShardCommand) (*smv1.ShardReply, error)
}

func (b brokenHandler) HandleCommand(ctx context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
	return b.fn(ctx, b.next, cmd)
}

func broken(fn func(context.Context, twophase.CommandHandler, *smv1.ShardCommand) (*smv1.ShardReply, error)) func(twophase.CommandHandler) twophase.CommandHandler {
	return func(next twophase.CommandHandler) twophase.CommandHandler { return brokenHandler{next: next, fn: fn} }
}

// Deliberately broken shards each fail the check of the rule they break.
func TestHarnessCatchesBrokenShards(t *testing.T) {
	srv := natstest.Start(t)
	cases := []struct {
		name, check string
		wrap        func(twophase.CommandHandler) twophase.CommandHandler
	}{
		{"ignores fencing tokens", "stale-token", broken(func(ctx context.Context, next twophase.CommandHandler, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
			if p := cmd.GetPrepare(); p != nil {
				for _, pl := range p.GetPlayers() {
					pl.FencingToken = 1 << 62 // every token looks newest
				}
			}
			return next.HandleCommand(ctx, cmd)
		})},
		{"keeps no tombstone", "abort-before-prepare", broken(func(ctx context.Context, next twophase.CommandHandler, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
			if a := cmd.GetAbort(); a != nil && len(a.GetPlayers()) > 0 && a.GetPlayers()[0].GetPlayerId() == "p01" {
				return &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: a.GetTxid(), ShardId: a.GetShardId(),
					Outcome: smv1.Outcome_OUTCOME_ABORTED, Term: a.GetTerm()}}}, nil
			}
			return next.HandleCommand(ctx, cmd)
		})},
		{"does not echo the term", "prepare-yes", broken(func(ctx context.Context, next twophase.CommandHandler, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
			r, err := next.HandleCommand(ctx, cmd)
			if v := r.GetVote(); v != nil {
				v.Term = 0
			}
			return r, err
		})},
		{"acks a contradictory abort", "conflicting-decision", broken(func(ctx context.Context, next twophase.CommandHandler, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
			r, err := next.HandleCommand(ctx, cmd)
			if a := cmd.GetAbort(); a != nil && errors.Is(err, twophase.ErrConflictingDecision) {
				return &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: a.GetTxid(), ShardId: a.GetShardId(),
					Outcome: smv1.Outcome_OUTCOME_ABORTED, Term: a.GetTerm()}}}, nil
			}
			return r, err
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := runShard(t, srv, sdkShard(c.wrap))
			if r := statusOf(rep, c.check); r.Status != conformance.Fail {
				t.Errorf("%s: %s %s, want FAIL", c.check, r.Status, r.Detail)
			}
			if rep.Passed() {
				t.Error("the report passed a broken shard")
			}
		})
	}
}

// A shard that serves its commands but never asks for the outcome of what it left in
// doubt (natstransport without a Querier) fails the recovery check.
func TestHarnessCatchesShardThatDoesNotRecover(t *testing.T) {
	noRecovery := func(ctx context.Context, nc *nats.Conn, path string) (func(), error) {
		j, err := twophase.OpenBoltJournal(path)
		if err != nil {
			return nil, err
		}
		p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: "s1", Handler: openGame{}, Journal: j})
		if err != nil {
			_ = j.Close()
			return nil, err
		}
		cli, err := client.New(client.Config{Conn: nc})
		if err != nil {
			_ = j.Close()
			return nil, err
		}
		if err := cli.RegisterShard(ctx, &smv1.ShardInfo{ShardId: "s1", ProtocolVersion: 1}); err != nil {
			_ = j.Close()
			return nil, err
		}
		srv, err := natstransport.Serve(ctx, natstransport.ParticipantConfig{Conn: nc, ShardID: "s1", Handler: p})
		if err != nil {
			_ = j.Close()
			return nil, err
		}
		return func() { _ = srv.Close(); _ = cli.Close(); _ = j.Close() }, nil
	}
	rep := runShard(t, natstest.Start(t), noRecovery)
	if r := statusOf(rep, "recovery"); r.Status != conformance.Fail {
		t.Errorf("recovery: %s %s, want FAIL", r.Status, r.Detail)
	}
}
