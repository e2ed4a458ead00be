package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// snapshotFile encodes st as a snapshot file taken at index, term 3.
func snapshotFile(t *testing.T, st *smv1.FSMState, index uint64) []byte {
	t.Helper()
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, ID: "test", Index: index, Term: 3, Size: int64(len(data))}
	if _, err := coordinator.WriteSnapshot(&buf, meta, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// inFlightState holds one PREPARING txn (players p1, p2) and one COMMITTED txn no
// shard has acknowledged (players q1, q2), as a crashed cluster's snapshot would.
func inFlightState() *smv1.FSMState {
	duel := func(id, a, b string) *smv1.Proposal {
		return &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: time.Minute.Milliseconds(), Teams: []*smv1.Team{
			{Players: []*smv1.Player{{PlayerId: a, ShardId: "s1"}}}, {Players: []*smv1.Player{{PlayerId: b, ShardId: "s2"}}}}}
	}
	prep, com := coordinator.Token(50, 0), coordinator.Token(60, 0)
	txn := func(txid string, p *smv1.Proposal, state smv1.TxnState, tok uint64) *smv1.TxnRecord {
		d := &smv1.Decision{Txid: txid, ProposalId: p.GetProposalId()}
		for _, pl := range []string{p.Teams[0].Players[0].PlayerId, p.Teams[1].Players[0].PlayerId} {
			d.Players = append(d.Players, &smv1.PlayerDetail{PlayerId: pl, FencingToken: tok})
		}
		if state == smv1.TxnState_TXN_STATE_COMMITTED {
			d.Outcome, d.Reason = smv1.Outcome_OUTCOME_COMMITTED, smv1.Reason_REASON_UNSPECIFIED
		}
		return &smv1.TxnRecord{Txid: txid, Proposal: p, BeginIndex: tok >> 16, Token: tok, State: state,
			Shards: []string{"s1", "s2"}, Decision: d}
	}
	lease := func(player, txid string, tok uint64, st smv1.LeaseState) *smv1.LeaseRecord {
		return &smv1.LeaseRecord{PlayerId: player, Txid: txid, Token: tok, State: st, TtlMs: time.Minute.Milliseconds()}
	}
	return &smv1.FSMState{AppliedIndex: 60, MaxToken: com,
		Txns: []*smv1.TxnRecord{
			txn("tx-50-0", duel("prep", "p1", "p2"), smv1.TxnState_TXN_STATE_PREPARING, prep),
			txn("tx-60-0", duel("com", "q1", "q2"), smv1.TxnState_TXN_STATE_COMMITTED, com),
		},
		Leases: []*smv1.LeaseRecord{
			lease("p1", "tx-50-0", prep, smv1.LeaseState_LEASE_STATE_RESERVED),
			lease("p2", "tx-50-0", prep, smv1.LeaseState_LEASE_STATE_RESERVED),
			lease("q1", "tx-60-0", com, smv1.LeaseState_LEASE_STATE_ACTIVE),
			lease("q2", "tx-60-0", com, smv1.LeaseState_LEASE_STATE_ACTIVE),
		},
		Shards: []*smv1.ShardInfo{
			{ShardId: "s1", Region: "eu", State: smv1.ShardState_SHARD_STATE_ACTIVE},
			{ShardId: "s2", Region: "eu", State: smv1.ShardState_SHARD_STATE_ACTIVE},
		},
	}
}

// TestRestoreDrivesInFlightTxnsAgain restores a snapshot holding a PREPARING and an
// undelivered COMMITTED transaction into a fresh cluster: the leader presumes the first
// aborted and redelivers the second, as after a failover, and with MinIndex the next
// fencing token lies above the floor.
func TestRestoreDrivesInFlightTxnsAgain(t *testing.T) {
	c := newTestCluster(t, clusterOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const floor = 1_000_000
	file := snapshotFile(t, inFlightState(), 60)
	var res *coordinator.RestoreResult
	if err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		var err error
		res, err = n.RestoreSnapshot(ctx, bytes.NewReader(file), coordinator.RestoreOptions{MinIndex: floor})
		return err
	}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Index <= floor || res.Forced || res.Snapshot.Preparing != 1 || res.Snapshot.Undelivered != 1 {
		t.Fatalf("result %+v", res)
	}
	testutil.WaitFor(t, 20*time.Second, "both restored txns DONE on every node", func() error {
		for i := range c.lc.Size() {
			for _, txid := range []string{"tx-50-0", "tx-60-0"} {
				rec, ok := c.lc.Node(i).FSM().Txn(txid)
				if !ok || rec.GetState() != smv1.TxnState_TXN_STATE_DONE {
					return errors.New(txid + " on " + c.lc.NodeID(i) + ": " + rec.GetState().String())
				}
			}
		}
		return nil
	})
	_, n, err := c.lc.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := n.FSM().Txn("tx-50-0"); rec.GetDecision().GetReason() != smv1.Reason_REASON_COORDINATOR_FAILOVER {
		t.Fatalf("PREPARING txn decided %v, want presumed abort", rec.GetDecision())
	}
	if rec, _ := n.FSM().Txn("tx-60-0"); rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("COMMITTED txn became %v", rec.GetDecision())
	}
	if _, ok := n.FSM().Lease("p1"); ok {
		t.Fatal("p1 still leased after the presumed abort")
	}
	if l, ok := n.FSM().Lease("q1"); !ok || l.Token != coordinator.Token(60, 0) {
		t.Fatalf("q1's restored lease: %+v %v", l, ok)
	}
	d, err := c.lc.Propose(ctx, &smv1.Proposal{ProposalId: "after", Mode: "duel", MatchTtlMs: 60_000, Teams: []*smv1.Team{
		{Players: []*smv1.Player{{PlayerId: "p1", ShardId: "s1"}}}, {Players: []*smv1.Player{{PlayerId: "p2", ShardId: "s2"}}}}})
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("propose after restore: %v %v", d, err)
	}
	if tok := d.GetPlayers()[0].GetFencingToken(); tok>>16 <= floor {
		t.Fatalf("token %d (index %d) not above the floor %d", tok, tok>>16, floor)
	}
}

// TestRestoreRefusesUnloadableState: a file whose checksum is right but whose state
// would not load (a lease above the max token) is refused before Raft sees it, since
// hashicorp/raft panics the leader when the FSM refuses a user restore.
func TestRestoreRefusesUnloadableState(t *testing.T) {
	c := newTestCluster(t, clusterOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := inFlightState()
	st.MaxToken = 1
	file := snapshotFile(t, st, 60)
	if _, _, err := coordinator.InspectSnapshot(bytes.NewReader(file), 0); err == nil {
		t.Fatal("inspect accepted an unloadable state")
	}
	err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		_, err := n.RestoreSnapshot(ctx, bytes.NewReader(file), coordinator.RestoreOptions{})
		return err
	})
	var se *coordinator.SnapshotError
	if !errors.As(err, &se) || se.Problem != coordinator.SnapshotBadState || !errors.Is(err, coordinator.ErrInvalid) {
		t.Fatalf("restore of an unloadable state: %v", err)
	}
	if err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		_, err := n.RestoreSnapshot(ctx, bytes.NewReader(file[:10]), coordinator.RestoreOptions{})
		return err
	}); !errors.As(err, &se) || se.Problem != coordinator.SnapshotTruncated {
		t.Fatalf("restore of a truncated file: %v", err)
	}
	if err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		_, err := n.RestoreSnapshot(ctx, bytes.NewReader(file), coordinator.RestoreOptions{MaxBytes: 10})
		return err
	}); !errors.As(err, &se) || se.Problem != coordinator.SnapshotTooLarge {
		t.Fatalf("restore of a file over the bound: %v", err)
	}
	_, n, err := c.lc.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cnt := n.FSM().Counts(); cnt.Txns != 0 || cnt.Shards != 3 {
		t.Fatalf("state changed: %+v", cnt)
	}
}
