package shard_test

import (
	"context"
	"log"

	"github.com/nats-io/nats.go"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
)

// myGame is the game's own player state. Prepare reserves every player or none;
// Commit and Abort may be called again after a crash, so they must be safe to repeat.
type myGame struct{}

func (myGame) Prepare(ctx context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	// Reserve the players in the game's database. Return rejections to vote NO
	// ({PlayerId, Code: "IN_MATCH"}), or an error if the database cannot answer now:
	// the Prepare is then delivered again.
	return nil, nil
}

func (myGame) Commit(ctx context.Context, txid string, players []*smv1.ShardPlayer) error {
	// Move the reserved players into match txid. players holds only those whose
	// fencing token is current.
	return nil
}

func (myGame) Abort(ctx context.Context, txid string, players []*smv1.ShardPlayer) error {
	// Release the reservation.
	return nil
}

// A shard server's whole integration: connect to NATS, start the shard, stop it on
// shutdown.
func Example() {
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	s, err := shard.Start(context.Background(), shard.Config{ID: "eu-1", Conn: nc, Game: myGame{}, JournalPath: "data/eu-1.journal"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Stop(context.Background())
	// ... run the game; s.Participant().Stats() has the shard's counters.
}
