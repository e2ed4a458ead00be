package twophase

import (
	"context"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Transport carries commands from one coordinator node to shards.
//
// Send is asynchronous and unreliable by contract: a command may be lost, delayed,
// duplicated or reordered, and a nil error only means it was handed to the network.
// The driver resends until it hears a vote or an ack, so implementations need not retry.
// Replies (votes and acks) come back through the ReplyHandler the transport was built
// with.
type Transport interface {
	Send(ctx context.Context, shardID string, cmd *smv1.ShardCommand) error
}

// ReplyHandler receives the votes and acks that shards send to a coordinator node.
// It must not block for long: transports call it from their delivery goroutines.
type ReplyHandler func(reply *smv1.ShardReply)

// CommandHandler is the shard side of a transport: it handles one command and returns
// the reply to send back (nil for none). *Participant implements it.
type CommandHandler interface {
	HandleCommand(ctx context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error)
}
