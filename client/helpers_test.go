package client_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func newClient(tb testing.TB, nc *nats.Conn, cfg client.Config) *client.Client {
	tb.Helper()
	cfg.Conn = nc
	c, err := client.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

var playerSeq atomic.Int64

// proposal makes a 1v1 across s1 and s2 with fresh players.
func proposal(id string) *smv1.Proposal {
	n := playerSeq.Add(1)
	return &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: 60_000, Teams: []*smv1.Team{
		{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("p%d-a", n), ShardId: "s1"}}},
		{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("p%d-b", n), ShardId: "s2"}}},
	}}
}

func startCluster(tb testing.TB) *natsapitest.Cluster {
	tb.Helper()
	return natsapitest.Start(tb, natsapitest.Options{})
}

func ctxFor(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
