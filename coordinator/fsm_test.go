package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tb is what the harness needs of testing.TB and rapid.T alike.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// fsmHarness applies commands to an FSM as Raft would, one entry per call.
type fsmHarness struct {
	t     tb
	f     *FSM
	index uint64
}

func newFSMHarness(t tb, shards ...string) *fsmHarness {
	h := &fsmHarness{t: t, f: NewFSM(nil, nil)}
	for _, s := range shards {
		h.mustOK(h.apply(regShard(s))[0])
	}
	return h
}

func (h *fsmHarness) apply(cmds ...*smv1.Command) []CommandResult {
	h.t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	out := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data})
	res, ok := out.([]CommandResult)
	if !ok {
		h.t.Fatalf("Apply returned %T %v", out, out)
	}
	return res
}

func (h *fsmHarness) mustOK(r CommandResult) CommandResult {
	h.t.Helper()
	if r.Err != nil {
		h.t.Fatal(r.Err)
	}
	return r
}

func (h *fsmHarness) snapshot() []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(h.f.State())
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func regShard(id string) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{Shard: &smv1.ShardInfo{ShardId: id}}}}
}

// proposal builds a proposal; players are "player@shard".
func proposal(id string, players ...string) *smv1.Proposal {
	var team smv1.Team
	for _, ps := range players {
		var pl, sh string
		for i := range ps {
			if ps[i] == '@' {
				pl, sh = ps[:i], ps[i+1:]
			}
		}
		team.Players = append(team.Players, &smv1.Player{PlayerId: pl, ShardId: sh})
	}
	return &smv1.Proposal{ProposalId: id, Mode: "duel", Teams: []*smv1.Team{&team}, MatchTtlMs: 60_000}
}

func begin(p *smv1.Proposal) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Begin{Begin: &smv1.Begin{Proposal: p, Verdict: &smv1.PolicyVerdict{Allow: true, Revision: "r1"}}}}
}

func decide(txid string, o smv1.Outcome) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Decide{Decide: &smv1.Decide{Txid: txid, Outcome: o}}}
}

func acked(txid, shard string) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Acked{Acked: &smv1.Acked{Txid: txid, ShardId: shard}}}
}

func renew(txid string) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Renew{Renew: &smv1.Renew{Txid: txid}}}
}

func release(txid string) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Release{Release: &smv1.Release{Txid: txid}}}
}

func expire(txid string, seq uint64) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Expire{Expire: &smv1.Expire{Txid: txid, RenewSeq: seq}}}
}

func forget(txids ...string) *smv1.Command {
	return &smv1.Command{Op: &smv1.Command_Forget{Forget: &smv1.Forget{Txids: txids}}}
}

const (
	committed = smv1.Outcome_OUTCOME_COMMITTED
	aborted   = smv1.Outcome_OUTCOME_ABORTED
)

func TestFSMBeginGrantsLeasesAllOrNothing(t *testing.T) {
	h := newFSMHarness(t, "a", "b")
	r := h.mustOK(h.apply(begin(proposal("p1", "x@a", "y@b")))[0])
	if !r.Created || r.Txn.State != smv1.TxnState_TXN_STATE_PREPARING {
		t.Fatalf("begin: created=%v state=%s", r.Created, r.Txn.State)
	}
	for _, p := range []string{"x", "y"} {
		l, ok := h.f.Lease(p)
		if !ok || l.TxID != r.Txn.Txid || l.Token != r.Txn.Token {
			t.Fatalf("lease of %s = %+v, %v", p, l, ok)
		}
	}
	before := h.snapshot()
	// y is busy: the whole proposal fails, z gets no lease, and the decision names y.
	r2 := h.mustOK(h.apply(begin(proposal("p2", "z@a", "y@b")))[0])
	d := r2.Txn.Decision
	if d.Outcome != aborted || d.Reason != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("conflicting begin: %s %s", d.Outcome, d.Reason)
	}
	if len(d.Players) != 1 || d.Players[0].PlayerId != "y" || d.Players[0].HolderTxid != r.Txn.Txid {
		t.Fatalf("details = %v", d.Players)
	}
	if _, ok := h.f.Lease("z"); ok {
		t.Fatal("z leased by a failed begin")
	}
	if r2.Txn.State != smv1.TxnState_TXN_STATE_DONE {
		t.Fatalf("aborted-at-begin state = %s, want DONE (nothing to deliver)", r2.Txn.State)
	}
	// Leases are untouched; only the aborted txn record was added.
	st := h.f.State()
	if len(st.Leases) != 2 {
		t.Fatalf("leases = %d", len(st.Leases))
	}
	_ = before
}

func TestFSMRepeatedProposalIDReturnsFirstTxn(t *testing.T) {
	h := newFSMHarness(t, "a")
	r1 := h.mustOK(h.apply(begin(proposal("p1", "x@a")))[0])
	before := h.snapshot()
	// Same id, different content: still the first txn, nothing changes.
	r2 := h.mustOK(h.apply(begin(proposal("p1", "q@a")))[0])
	if r2.Created || r2.Txn.Txid != r1.Txn.Txid {
		t.Fatalf("repeat: created=%v txid=%s want %s", r2.Created, r2.Txn.Txid, r1.Txn.Txid)
	}
	after := h.snapshot()
	// applied_index moved; everything else equal.
	var a, b smv1.FSMState
	_ = proto.Unmarshal(before, &a)
	_ = proto.Unmarshal(after, &b)
	a.AppliedIndex, b.AppliedIndex = 0, 0
	if !proto.Equal(&a, &b) {
		t.Fatal("repeated proposal changed state")
	}
}

func TestFSMPolicyDenyAndUnknownShard(t *testing.T) {
	h := newFSMHarness(t, "a")
	c := begin(proposal("p1", "x@a"))
	c.GetBegin().Verdict = &smv1.PolicyVerdict{Allow: false, Revision: "r9",
		Denials: []*smv1.Denial{{Code: "MMR_SPREAD", Message: "too wide", Players: []string{"x"}}}}
	d := h.mustOK(h.apply(c)[0]).Txn.Decision
	if d.Reason != smv1.Reason_REASON_POLICY_DENIED || d.PolicyRevision != "r9" || len(d.Denials) != 1 {
		t.Fatalf("deny decision = %v", d)
	}
	if _, ok := h.f.Lease("x"); ok {
		t.Fatal("denied proposal leased a player")
	}
	d = h.mustOK(h.apply(begin(proposal("p2", "x@nowhere")))[0]).Txn.Decision
	if d.Reason != smv1.Reason_REASON_INVALID {
		t.Fatalf("unknown shard reason = %s", d.Reason)
	}
	if h.f.Counts().Leases != 0 {
		t.Fatal("leases granted")
	}
}

func TestFSMDecideOnceAndLeaseLifecycle(t *testing.T) {
	h := newFSMHarness(t, "a", "b")
	tx := h.mustOK(h.apply(begin(proposal("p1", "x@a", "y@b")))[0]).Txn.Txid
	if err := h.apply(acked(tx, "a"))[0].Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("ack before decide: %v", err)
	}
	if err := h.apply(renew(tx))[0].Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("renew of undecided: %v", err)
	}
	r := h.mustOK(h.apply(decide(tx, committed))[0])
	if r.Txn.State != smv1.TxnState_TXN_STATE_COMMITTED {
		t.Fatal(r.Txn.State)
	}
	// A later abort does not change the decision.
	r = h.mustOK(h.apply(decide(tx, aborted))[0])
	if r.Txn.Decision.Outcome != committed {
		t.Fatal("second decision replaced the first")
	}
	if l, _ := h.f.Lease("x"); l.State != lease.Active {
		t.Fatalf("lease state after commit = %v", l.State)
	}
	h.mustOK(h.apply(acked(tx, "a"))[0])
	if err := h.apply(acked(tx, "zz"))[0].Err; !errors.Is(err, ErrInvalid) {
		t.Fatalf("ack from foreign shard: %v", err)
	}
	r = h.mustOK(h.apply(acked(tx, "b"))[0])
	if r.Txn.State != smv1.TxnState_TXN_STATE_DONE {
		t.Fatal("not DONE after all acks")
	}
	// Forget keeps a match whose leases are live.
	h.mustOK(h.apply(forget(tx))[0])
	if _, ok := h.f.Txn(tx); !ok {
		t.Fatal("forgot a live match")
	}
	h.mustOK(h.apply(renew(tx))[0])
	// Expire with the stale seq 0 is a no-op: the renew came in between.
	if r := h.mustOK(h.apply(expire(tx, 0))[0]); r.Expired {
		t.Fatal("stale expire took effect")
	}
	if r := h.mustOK(h.apply(expire(tx, 1))[0]); !r.Expired || r.Txn.LeaseEnd != "expired" {
		t.Fatalf("expire: %+v", r)
	}
	if _, ok := h.f.Lease("x"); ok {
		t.Fatal("lease survived expiry")
	}
	if err := h.apply(release(tx))[0].Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("release after expiry: %v", err)
	}
	h.mustOK(h.apply(forget(tx))[0])
	if _, ok := h.f.Txn(tx); ok {
		t.Fatal("finished txn not forgotten")
	}
	if _, ok := h.f.TxnByProposal("p1"); ok {
		t.Fatal("proposal index kept a forgotten txn")
	}
}

func TestFSMAbortFreesLeases(t *testing.T) {
	h := newFSMHarness(t, "a")
	tx := h.mustOK(h.apply(begin(proposal("p1", "x@a")))[0]).Txn.Txid
	h.mustOK(h.apply(decide(tx, aborted))[0])
	if _, ok := h.f.Lease("x"); ok {
		t.Fatal("abort kept the lease")
	}
	tx2 := h.mustOK(h.apply(begin(proposal("p2", "x@a")))[0]).Txn
	if tx2.State != smv1.TxnState_TXN_STATE_PREPARING {
		t.Fatal("player not free after abort")
	}
}

func TestFSMTokensIncreaseAcrossBatchPositions(t *testing.T) {
	h := newFSMHarness(t, "a")
	res := h.apply(begin(proposal("p1", "x@a")), begin(proposal("p2", "y@a")))
	if res[0].Txn.Token >= res[1].Txn.Token || res[0].Txn.Txid == res[1].Txn.Txid {
		t.Fatalf("tokens %d %d txids %s %s", res[0].Txn.Token, res[1].Txn.Token, res[0].Txn.Txid, res[1].Txn.Txid)
	}
	// Same player re-granted in a later entry gets a higher token.
	h.mustOK(h.apply(decide(res[0].Txn.Txid, aborted))[0])
	r := h.mustOK(h.apply(begin(proposal("p3", "x@a")))[0])
	if r.Txn.Token <= res[1].Txn.Token {
		t.Fatal("token did not increase")
	}
}

func TestFSMBadEntriesChangeNothing(t *testing.T) {
	h := newFSMHarness(t, "a")
	h.mustOK(h.apply(begin(proposal("p1", "x@a")))[0])
	before := h.f.State()
	for i, data := range [][]byte{nil, {0}, {9, 1, 2}, {logFormatV1, 0xff, 0xff}, {logFormatV1}} {
		h.index++
		out := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data})
		if _, ok := out.(error); !ok {
			t.Errorf("entry %d: response %T, want error", i, out)
		}
	}
	after := h.f.State()
	before.AppliedIndex, after.AppliedIndex = 0, 0
	if !proto.Equal(before, after) {
		t.Fatal("bad entries changed state")
	}
	if r := h.apply(&smv1.Command{})[0]; !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("empty command: %v", r.Err)
	}
}

func TestFSMSnapshotRestoreIdentical(t *testing.T) {
	h := newFSMHarness(t, "a", "b")
	for i := 0; i < 20; i++ {
		r := h.mustOK(h.apply(begin(proposal(fmt.Sprintf("p%d", i), fmt.Sprintf("x%d@a", i%7), fmt.Sprintf("y%d@b", i))))[0])
		if r.Txn.State == smv1.TxnState_TXN_STATE_PREPARING && i%3 != 0 {
			h.apply(decide(r.Txn.Txid, committed))
			if i%2 == 0 {
				h.apply(acked(r.Txn.Txid, "a"), acked(r.Txn.Txid, "b"))
			}
		}
	}
	g := restoreCopy(t, h.f)
	if !proto.Equal(h.f.State(), g.State()) {
		t.Fatal("restored state differs")
	}
	// Replaying the same further entries on both gives the same state.
	h2 := &fsmHarness{t: t, f: g, index: h.index}
	for _, x := range []*fsmHarness{h, h2} {
		x.apply(begin(proposal("late", "new@a")))
	}
	if !bytes.Equal(h.snapshot(), h2.snapshot()) {
		t.Fatal("replay after restore diverged")
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte{1, 2, 3}))); err == nil {
		t.Fatal("garbage snapshot accepted")
	}
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// TestFSMInDoubtByShard: a decided transaction counts against every shard that has
// not acked it, and not before it is decided or after it is done.
func TestFSMInDoubtByShard(t *testing.T) {
	h := newFSMHarness(t, "a", "b", "c")
	want := func(w map[string]int) {
		t.Helper()
		if got := h.f.InDoubtByShard(); !maps.Equal(got, w) {
			t.Fatalf("in doubt %v, want %v", got, w)
		}
	}
	tx := h.mustOK(h.apply(begin(proposal("p1", "x@a", "y@b")))[0]).Txn.Txid
	want(map[string]int{"a": 0, "b": 0, "c": 0}) // preparing: not decided yet
	h.mustOK(h.apply(decide(tx, committed))[0])
	want(map[string]int{"a": 1, "b": 1, "c": 0})
	h.mustOK(h.apply(acked(tx, "a"))[0])
	want(map[string]int{"a": 0, "b": 1, "c": 0})
	h.mustOK(h.apply(acked(tx, "b"))[0])
	want(map[string]int{"a": 0, "b": 0, "c": 0})
}

// ShardTakesBatches follows registrations (a re-registration without the flag turns
// it off) and survives a snapshot restore.
func TestFSMShardTakesBatches(t *testing.T) {
	h := newFSMHarness(t, "plain")
	reg := func(id string, batches bool) *smv1.Command {
		return &smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{
			Shard: &smv1.ShardInfo{ShardId: id, CommandBatches: batches}}}}
	}
	h.mustOK(h.apply(reg("b1", true), reg("b2", true))[0])
	h.mustOK(h.apply(reg("b2", false))[0])
	want := map[string]bool{"plain": false, "b1": true, "b2": false, "unknown": false}
	for id, w := range want {
		if got := h.f.ShardTakesBatches(id); got != w {
			t.Errorf("ShardTakesBatches(%q) = %v, want %v", id, got, w)
		}
	}
	g := restoreCopy(t, h.f)
	for id, w := range want {
		if got := g.ShardTakesBatches(id); got != w {
			t.Errorf("after restore, ShardTakesBatches(%q) = %v, want %v", id, got, w)
		}
	}
}
