package coordinator

import (
	"bytes"
	"io"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// buildSampleFSM applies a log that reaches every kind of transaction and lease the FSM
// holds: preparing, committed and undelivered, done with live, renewed, released and
// expired leases, aborted by policy (denials), by a leased player (details), by an
// unknown or draining shard, by shards (decide details) and by an operator, a forgotten
// one, multi-team proposals with attributes, metadata and traceparents, and shards with
// labels and a drained state.
func buildSampleFSM(t tb) *fsmHarness {
	h := newFSMHarness(t, "a", "b")
	h.mustOK(h.apply(&smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{Shard: &smv1.ShardInfo{
		ShardId: "c", Region: "eu-west", Capacity: 300, Labels: map[string]string{"zone": "1", "tier": "gold"}, ProtocolVersion: 2}}}})[0])
	h.mustOK(h.apply(&smv1.Command{Op: &smv1.Command_SetShardState{SetShardState: &smv1.SetShardState{
		ShardId: "c", State: smv1.ShardState_SHARD_STATE_DRAINING}}})[0])
	wall := int64(1_735_689_600_000)
	beginOf := func(p *smv1.Proposal, rev, tp string) *smv1.Command {
		wall += 7
		return &smv1.Command{Op: &smv1.Command_Begin{Begin: &smv1.Begin{Proposal: p,
			Verdict: &smv1.PolicyVerdict{Allow: true, Revision: rev}, WallUnixMs: wall, Traceparent: tp}}}
	}
	decideOf := func(txid string, o smv1.Outcome, r smv1.Reason, msg string, det ...*smv1.PlayerDetail) *smv1.Command {
		wall += 5
		return &smv1.Command{Op: &smv1.Command_Decide{Decide: &smv1.Decide{Txid: txid, Outcome: o, Reason: r, Message: msg,
			Details: det, WallUnixMs: wall}}}
	}
	tx := func(r CommandResult) string { return h.mustOK(r).Txn.Txid }
	rich := proposal("rich", "r1@a", "r2@b", "r3@a")
	rich.Teams = append(rich.Teams, &smv1.Team{Players: []*smv1.Player{{PlayerId: "r4", ShardId: "b",
		Attributes: &smv1.PlayerAttributes{Mmr: 1700, Region: "eu", PartyId: "party-1",
			LatencyMs: map[string]int32{"eu": 31, "us": 95}, Extra: map[string]string{"k": "v"}}}}})
	rich.Metadata = map[string]string{"region": "eu-west", "map": "dust"}
	rich.PrepareTimeoutMs = 1500

	prep := tx(h.apply(beginOf(proposal("preparing", "x1@a", "y1@b"), "r1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))[0])
	_ = prep
	live := tx(h.apply(beginOf(proposal("live", "x2@a", "y2@b"), "r1", ""))[0])
	und := tx(h.apply(beginOf(proposal("undelivered", "x3@a", "y3@b"), "r1", ""))[0])
	rel := tx(h.apply(beginOf(proposal("released", "x4@a", "y4@b"), "r2", ""))[0])
	exp := tx(h.apply(beginOf(proposal("expired", "x5@a"), "r2", ""))[0])
	rej := tx(h.apply(beginOf(proposal("rejected", "x6@a", "y6@b"), "r2", ""))[0])
	op := tx(h.apply(beginOf(proposal("operator", "x7@a"), "", ""))[0])
	gone := tx(h.apply(beginOf(proposal("forgotten", "x8@a"), "", ""))[0])
	richTx := tx(h.apply(beginOf(rich, "r2", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"))[0])

	// Aborted at begin: a leased player, a policy denial, an unknown and a draining shard.
	h.mustOK(h.apply(beginOf(proposal("leased", "z9@a", "x1@a"), "r1", ""))[0])
	deny := beginOf(proposal("denied", "d1@a"), "r3", "")
	deny.GetBegin().Verdict = &smv1.PolicyVerdict{Allow: false, Revision: "r3",
		Denials: []*smv1.Denial{{Code: "MMR_SPREAD", Message: "too wide", Players: []string{"d1"}}}}
	h.mustOK(h.apply(deny)[0])
	h.mustOK(h.apply(beginOf(proposal("unknown-shard", "u1@nowhere"), "r1", ""))[0])
	h.mustOK(h.apply(beginOf(proposal("draining-shard", "u2@c"), "r1", ""))[0])

	for _, id := range []string{live, und, rel, exp, gone, richTx} {
		h.mustOK(h.apply(decideOf(id, committed, 0, ""))[0])
	}
	h.mustOK(h.apply(decideOf(rej, aborted, smv1.Reason_REASON_SHARD_REJECTED, "shard [b] voted NO",
		&smv1.PlayerDetail{PlayerId: "y6", ShardId: "b", Code: "BUSY", Message: "in a queue"}))[0])
	h.mustOK(h.apply(decideOf(op, aborted, smv1.Reason_REASON_OPERATOR_ABORT, "aborted by operator"))[0])
	for _, id := range []string{live, rel, rej, gone, richTx} {
		h.mustOK(h.apply(acked(id, "a"), acked(id, "b"))[0])
	}
	h.mustOK(h.apply(acked(und, "b"))[0])
	h.mustOK(h.apply(acked(exp, "a"))[0])
	h.mustOK(h.apply(renew(live))[0])
	h.mustOK(h.apply(renew(live))[0])
	h.mustOK(h.apply(renew(richTx))[0])
	h.mustOK(h.apply(release(rel))[0])
	h.mustOK(h.apply(release(gone))[0])
	h.mustOK(h.apply(expire(exp, 0))[0])
	h.mustOK(h.apply(forget(gone))[0])
	return h
}

// TestFSMRestoresSnapshotV1: testdata/fsm-state-v1.pb is the snapshot buildSampleFSM's
// state persisted by the FSM before the snapshot format had versions (commit 3ecb411, a
// protobuf FSMState). It restores to exactly the state this build reaches by applying
// the same log, and the restored FSM behaves the same from there on.
func TestFSMRestoresSnapshotV1(t *testing.T) {
	raw, err := os.ReadFile("testdata/fsm-state-v1.pb")
	if err != nil {
		t.Fatal(err)
	}
	var want smv1.FSMState
	if err := proto.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if got := g.State(); !proto.Equal(got, &want) {
		t.Fatalf("restored state differs from the snapshot's:\n%v\nwant\n%v", got, &want)
	}
	h := buildSampleFSM(t)
	if got := h.f.State(); !proto.Equal(got, &want) {
		t.Fatalf("this build applies the sample log to a different state:\n%v\nwant\n%v", got, &want)
	}
	for _, rec := range want.Txns {
		if got, ok := g.TxnByProposal(rec.GetProposal().GetProposalId()); !ok || !proto.Equal(got, rec) {
			t.Fatalf("TxnByProposal(%q) = %v, %v; want %v", rec.GetProposal().GetProposalId(), got, ok, rec)
		}
	}
	// The same further entries on the restored FSM and on the replayed one.
	h2 := &fsmHarness{t: t, f: g, index: h.index}
	for _, x := range []*fsmHarness{h, h2} {
		x.apply(begin(proposal("after", "n1@a", "n2@b")))
		x.apply(decide(TxID(x.index, 0), committed))
		x.apply(release("tx-3-0"), acked("tx-4-0", "a"))
	}
	if !bytes.Equal(h.snapshot(), h2.snapshot()) {
		t.Fatal("restored and replayed FSMs diverged")
	}
	// And a snapshot of the restored FSM, in the current format, restores to it.
	g2 := restoreCopy(t, g)
	if !proto.Equal(g2.State(), g.State()) {
		t.Fatal("current-format snapshot of a restored state differs")
	}
}

// restoreCopy snapshots f and restores the snapshot into a new FSM.
func restoreCopy(t tb, f *FSM) *FSM {
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return g
}
