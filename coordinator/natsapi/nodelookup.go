package natsapi

import (
	"context"

	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// NodeLookup is a Node that forwards every call to whatever node the function returns
// at the time of the call: for an API server made before its node starts, or kept
// across the node's restarts. The function returns an error (a
// *coordinator.NotLeaderError is what callers expect) while no node runs.
type NodeLookup func() (*coordinator.Node, error)

var _ Node = NodeLookup(nil)

// Propose forwards to the current node.
func (f NodeLookup) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	n, err := f()
	if err != nil {
		return nil, err
	}
	return n.Propose(ctx, p)
}

// Status forwards to the current node.
func (f NodeLookup) Status(ctx context.Context, id string) (*smv1.TxnRecord, error) {
	n, err := f()
	if err != nil {
		return nil, err
	}
	return n.Status(ctx, id)
}

// Renew forwards to the current node.
func (f NodeLookup) Renew(ctx context.Context, txid string) error {
	n, err := f()
	if err != nil {
		return err
	}
	return n.Renew(ctx, txid)
}

// Release forwards to the current node.
func (f NodeLookup) Release(ctx context.Context, txid string) error {
	n, err := f()
	if err != nil {
		return err
	}
	return n.Release(ctx, txid)
}

// RegisterShard forwards to the current node.
func (f NodeLookup) RegisterShard(ctx context.Context, s *smv1.ShardInfo) error {
	n, err := f()
	if err != nil {
		return err
	}
	return n.RegisterShard(ctx, s)
}
