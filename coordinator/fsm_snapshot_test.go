package coordinator

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// persistBytes snapshots f and returns the persisted bytes.
func persistBytes(t tb, f *FSM) []byte {
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// TestFSMSnapshotIsPointInTime: a snapshot holds the state of the moment Snapshot
// returned, though Persist runs while the FSM goes on applying every kind of change
// to the txns, leases and shards it holds (run with -race: the FSM changes copies, never
// what the snapshot reads).
func TestFSMSnapshotIsPointInTime(t *testing.T) {
	h := buildSampleFSM(t)
	want := h.f.State()
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	persisted := make(chan error, 1)
	var start sync.WaitGroup
	start.Add(1)
	go func() {
		start.Wait()
		persisted <- snap.Persist(sink)
	}()
	// Change everything the sample holds, half before Persist starts, half during.
	live := []string{}
	for _, rec := range want.Txns {
		live = append(live, rec.Txid)
	}
	for i, txid := range live {
		if i == len(live)/2 {
			start.Done()
		}
		h.apply(decide(txid, committed), acked(txid, "a"), acked(txid, "b"), renew(txid))
		h.apply(release(txid), forget(txid))
	}
	h.apply(begin(proposal("new", "n1@a", "n2@b")))
	h.apply(&smv1.Command{Op: &smv1.Command_SetShardState{SetShardState: &smv1.SetShardState{ShardId: "a",
		State: smv1.ShardState_SHARD_STATE_DISABLED}}}, regShard("d"))
	if err := <-persisted; err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if proto.Equal(h.f.State(), want) {
		t.Fatal("the FSM did not change: the test tests nothing")
	}
	g := NewFSM(nil, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := g.State(); !proto.Equal(got, want) {
		t.Fatalf("snapshot holds\n%v\nwant the state when it was taken\n%v", got, want)
	}
	// Released: the FSM changes its txns in place again.
	tx := h.mustOK(h.apply(begin(proposal("later", "l1@b")))[0]).Txn.Txid
	before := h.f.txns.Get(tx)
	h.apply(decide(tx, committed))
	if h.f.txns.Get(tx) != before || h.f.frozen != 0 {
		t.Fatal("released snapshot still makes the FSM copy on write")
	}
}

// TestFSMSnapshotBytesDeterministic: equal states write equal bytes, whichever way
// they were reached (applied, restored from either format), and a restore reproduces
// them.
func TestFSMSnapshotBytesDeterministic(t *testing.T) {
	h := buildSampleFSM(t)
	a := persistBytes(t, h.f)
	if !bytes.HasPrefix(a, []byte(snapMagic)) {
		t.Fatalf("snapshot starts %q, not the version 2 magic", a[:min(len(a), 8)])
	}
	g := restoreCopy(t, h.f)
	if b := persistBytes(t, g); !bytes.Equal(a, b) {
		t.Fatal("a restored state snapshots to different bytes")
	}
	v1 := NewFSM(nil, nil)
	raw, _ := proto.Marshal(h.f.State())
	if err := v1.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if b := persistBytes(t, v1); !bytes.Equal(a, b) {
		t.Fatal("the state restored from version 1 snapshots to different bytes")
	}
}

// TestFSMRestoreRefusesDamagedV2: every truncation of a version 2 snapshot, and a
// flipped byte in each record kind, is refused and changes nothing.
func TestFSMRestoreRefusesDamagedV2(t *testing.T) {
	h := buildSampleFSM(t)
	good := persistBytes(t, h.f)
	target := buildSampleFSM(t)
	want := target.f.State()
	refused := 0
	try := func(b []byte) {
		if err := target.f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			refused++
			if !proto.Equal(target.f.State(), want) {
				t.Fatalf("refused restore changed the state")
			}
			return
		}
		target.f = buildSampleFSM(t).f // a damaged snapshot that decodes replaced the state
	}
	for n := 1; n < len(good); n++ {
		try(good[:n])
	}
	if refused != len(good)-1 {
		t.Fatalf("%d of %d truncations refused", refused, len(good)-1)
	}
	if err := target.f.Restore(io.NopCloser(bytes.NewReader(append(bytes.Clone(good), 0)))); err == nil {
		t.Fatal("trailing byte accepted")
	}
	// A header count that disagrees with the records is caught at the end.
	bad := bytes.Clone(good)
	off := len(snapMagic) + 2 // the header's kind and length
	for range 2 {             // applied index, max token
		_, n := protowire.ConsumeVarint(bad[off:])
		off += n
	}
	if bad[off] != 3 {
		t.Fatalf("header announces %d shards, the sample has 3", bad[off])
	}
	bad[off] = 4
	if err := target.f.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
		t.Fatal("a header announcing a missing shard accepted")
	}
}

// FuzzWireValid: wireValid accepts exactly the bytes proto.Unmarshal accepts.
func FuzzWireValid(f *testing.F) {
	h := buildSampleFSM(f)
	for _, rec := range h.f.State().Txns {
		for _, m := range []proto.Message{rec.GetProposal(), rec.GetDecision()} {
			b, _ := proto.Marshal(m)
			f.Add(b, uint8(0))
			f.Add(b, uint8(1))
		}
	}
	f.Add([]byte{0x0a, 0x02, 0xff, 0xfe}, uint8(0)) // invalid UTF-8 proposal id
	f.Add([]byte{0x08, 0x01}, uint8(0))             // proposal_id as a varint: unknown
	f.Add([]byte{0x1a, 0x04, 0x0a, 0x02, 0x12, 0x00}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		msgs := []proto.Message{&smv1.Proposal{}, &smv1.Decision{}, &smv1.ShardInfo{}, &smv1.TxnRecord{}}
		m := msgs[int(which)%len(msgs)]
		want := proto.Unmarshal(b, m) == nil
		if got := wireValid(m.ProtoReflect().Descriptor(), b); got != want {
			t.Fatalf("wireValid(%s, %x) = %v, proto.Unmarshal accepts: %v", m.ProtoReflect().Descriptor().FullName(), b, got, want)
		}
	})
}

// FuzzDecodeSnapshotV2: whatever a version 2 stream holds, decoding never panics, and
// a state it accepts reads back (every record rebuilds and encodes), snapshots again
// and restores to the same state.
func FuzzDecodeSnapshotV2(f *testing.F) {
	h := buildSampleFSM(f)
	f.Add(persistBytes(f, h.f))
	small := newFSMHarness(f, "a")
	small.apply(begin(proposal("p", "x@a")))
	f.Add(persistBytes(f, small.f))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(bufio.NewReader(bytes.NewReader(b)), 0)
		if err != nil {
			return
		}
		state := stateOf(st.txns, st.leases, st.shards, st.applied)
		if _, err := proto.Marshal(state); err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		g := &FSM{txns: st.txns, byProposal: st.byProposal, leases: st.leases, shards: st.shards, applied: st.applied,
			appliedCh: make(chan struct{})}
		g2 := restoreCopy(t, g)
		if !proto.Equal(g2.State(), state) {
			t.Fatal("accepted state does not survive a snapshot")
		}
	})
}

// TestFSMCommandResultsOwned: a command's result is the caller's: changing it changes
// nothing in the FSM (the shard list a txn shares with others included).
func TestFSMCommandResultsOwned(t *testing.T) {
	h := newFSMHarness(t, "a", "b")
	var txids []string
	for i := range 3 {
		r := h.mustOK(h.apply(begin(proposal(fmt.Sprint("p", i), fmt.Sprint("x", i, "@a"), fmt.Sprint("y", i, "@b"))))[0])
		txids = append(txids, r.Txn.Txid)
		want := h.f.State()
		r.Txn.Shards[0] = "zzz"
		r.Txn.Proposal.Teams[0].Players[0].PlayerId = "changed"
		r.Txn.Decision.Players[0].FencingToken = 1
		if !proto.Equal(h.f.State(), want) {
			t.Fatal("changing a begin result changed the FSM")
		}
	}
	r := h.mustOK(h.apply(decide(txids[0], committed))[0])
	want := h.f.State()
	// A decide's result is its outcome: the txn, its state and decision, what the
	// driver reads (FSM.outcome).
	if r.Txn.GetTxid() != txids[0] || r.Txn.GetDecision().GetOutcome() != committed || r.Txn.GetState() != smv1.TxnState_TXN_STATE_COMMITTED || r.Txn.GetBeginIndex() == 0 {
		t.Fatalf("decide result %v", r.Txn)
	}
	r.Txn.Decision.Outcome = aborted
	if !proto.Equal(h.f.State(), want) {
		t.Fatal("changing a decide result changed the FSM")
	}
}

// TestFSMSnapshotFormat1: with SetSnapshotFormat(1) the FSM persists exactly the bytes
// it did before format 2 (the protobuf FSMState), and restores them.
func TestFSMSnapshotFormat1(t *testing.T) {
	h := buildSampleFSM(t)
	if err := h.f.SetSnapshotFormat(3); err == nil {
		t.Fatal("format 3 accepted")
	}
	if err := h.f.SetSnapshotFormat(1); err != nil {
		t.Fatal(err)
	}
	got := persistBytes(t, h.f)
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(h.f.State())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("format 1 snapshot of %d bytes differs from the FSMState's %d", len(got), len(want))
	}
	raw, err := os.ReadFile("testdata/fsm-state-v1.pb")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatal("format 1 snapshot differs from the one the FSM before format 2 wrote of the same state")
	}
	if err := h.f.SetSnapshotFormat(2); err != nil {
		t.Fatal(err)
	}
	if b := persistBytes(t, h.f); !bytes.HasPrefix(b, []byte(snapMagic)) {
		t.Fatal("format 2 not written after switching back")
	}
}
