package coordinator_test

import (
	"context"
	"math/rand"
	"sync"

	"github.com/shardmatch/shardmatch/chaos/history"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// simShard is a test shard's own player state: it refuses a share of prepares as a
// real shard would (player offline, busy in a dungeon) and records every effect it
// applies into the history.
type simShard struct {
	id  string
	rec *history.Recorder

	mu         sync.Mutex
	rng        *rand.Rand
	rejectRate float64
	commits    map[string]int // txid -> times Commit applied (must stay <= 1)
}

func newSimShard(id string, rec *history.Recorder, seed int64, rejectRate float64) *simShard {
	return &simShard{id: id, rec: rec, rng: rand.New(rand.NewSource(seed)), rejectRate: rejectRate, commits: map[string]int{}}
}

func (s *simShard) Prepare(_ context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	s.mu.Lock()
	refuse := s.rejectRate > 0 && s.rng.Float64() < s.rejectRate
	s.mu.Unlock()
	if refuse {
		s.record(history.ShardVotedNo, txid, players)
		return []*smv1.PlayerRejection{{PlayerId: players[0].GetPlayerId(), Code: "OFFLINE", Message: "player logged out"}}, nil
	}
	s.record(history.ShardPrepared, txid, players)
	return nil, nil
}

func (s *simShard) Commit(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	s.mu.Lock()
	s.commits[txid]++
	s.mu.Unlock()
	s.record(history.ShardCommitted, txid, players)
	return nil
}

func (s *simShard) Abort(_ context.Context, txid string, players []*smv1.ShardPlayer) error {
	s.record(history.ShardAborted, txid, players)
	return nil
}

// record appends a shard effect to the history. The shard's lock orders the events.
func (s *simShard) record(kind history.ShardEventKind, txid string, players []*smv1.ShardPlayer) {
	ev := history.ShardEvent{Shard: s.id, Kind: kind, TxID: txid}
	for _, p := range players {
		ev.Players = append(ev.Players, history.PlayerToken{Player: p.GetPlayerId(), Token: p.GetFencingToken()})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.RecordShard(ev)
}
