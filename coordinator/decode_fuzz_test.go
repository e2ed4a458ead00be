package coordinator

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// FuzzDecodeBatch: a log entry either fails to decode with an INVALID error, or
// decodes to commands that encode back to an entry decoding to the same commands.
func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch([]*smv1.Command{begin(proposal("p1", "x@a", "y@b")), decide("tx-2-0", committed), acked("tx-2-0", "a"), regShard("c")})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{logFormatV1})
	f.Add([]byte{2, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not INVALID", err)
			}
			return
		}
		again, err := EncodeBatch(cmds)
		if err != nil {
			t.Fatalf("decoded %d commands that do not encode: %v", len(cmds), err)
		}
		back, err := DecodeBatch(again)
		if err != nil || len(back) != len(cmds) {
			t.Fatalf("round trip: %d commands, %v", len(back), err)
		}
		for i := range cmds {
			if !proto.Equal(cmds[i], back[i]) {
				t.Fatalf("command %d changed in a round trip: %v → %v", i, cmds[i], back[i])
			}
		}
	})
}

// snapshotSeed is a valid snapshot file of a small FSM.
func snapshotSeed(f *testing.F) []byte {
	h := newFSMHarness(f, "a", "b")
	h.mustOK(h.apply(begin(proposal("p1", "x@a", "y@b")))[0])
	data, err := proto.Marshal(h.f.State())
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, ID: "1-2-3", Index: 2, Term: 1, Size: int64(len(data))}
	if _, err := WriteSnapshot(&buf, meta, bytes.NewReader(data)); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzReadSnapshot: a snapshot file either fails with a *SnapshotError (INVALID), or
// its data is exactly meta.Size bytes, it writes back to the same file, and if its
// state passes DecodeSnapshotState an FSM restores it (the promise that keeps a user
// restore from failing half-way).
func FuzzReadSnapshot(f *testing.F) {
	good := snapshotSeed(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte(SnapshotMagic))
	f.Fuzz(func(t *testing.T, file []byte) {
		var data bytes.Buffer
		meta, err := ReadSnapshot(bytes.NewReader(file), &data, 1<<20)
		if err != nil {
			var se *SnapshotError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not a *SnapshotError", err, err)
			}
			return
		}
		if int64(data.Len()) != meta.Size {
			t.Fatalf("%d bytes of data, meta says %d", data.Len(), meta.Size)
		}
		var again bytes.Buffer
		if _, err := WriteSnapshot(&again, meta, bytes.NewReader(data.Bytes())); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), file) {
			// The metadata's JSON may be written differently (field order, spaces):
			// what must hold is that the rewrite reads back to the same data.
			var d2 bytes.Buffer
			if m2, err := ReadSnapshot(bytes.NewReader(again.Bytes()), &d2, 1<<20); err != nil || m2.Index != meta.Index ||
				m2.Term != meta.Term || !bytes.Equal(d2.Bytes(), data.Bytes()) {
				t.Fatalf("rewritten snapshot reads back as %v, %v", m2, err)
			}
		}
		checkRestorable(t, data.Bytes())
	})
}

// FuzzDecodeSnapshotState: FSM state that DecodeSnapshotState accepts is restored by
// an FSM without error, and the FSM then holds the same leases; state it refuses is
// a *SnapshotError.
func FuzzDecodeSnapshotState(f *testing.F) {
	h := newFSMHarness(f, "a", "b")
	h.mustOK(h.apply(begin(proposal("p1", "x@a", "y@b")))[0])
	h.mustOK(h.apply(begin(proposal("p2", "z@a")))[0])
	st, _ := proto.Marshal(h.f.State())
	f.Add(st)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) { checkRestorable(t, b) })
}

func checkRestorable(t *testing.T, b []byte) {
	st, err := DecodeSnapshotState(b)
	if err != nil {
		var se *SnapshotError
		if !errors.As(err, &se) {
			t.Fatalf("error %T %v is not a *SnapshotError", err, err)
		}
		return
	}
	f := NewFSM(nil, nil)
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("DecodeSnapshotState accepted state the FSM refuses: %v", err)
	}
	if got := f.State(); len(got.GetLeases()) != len(st.GetLeases()) || len(got.GetShards()) != len(st.GetShards()) {
		t.Fatalf("restored %d leases %d shards, state has %d %d", len(got.GetLeases()), len(got.GetShards()), len(st.GetLeases()), len(st.GetShards()))
	}
}

// FuzzValidateProposal: any bytes a proposer sends, decoded as a Proposal, either
// fail validation with an *InvalidError naming a field, or meet every limit.
func FuzzValidateProposal(f *testing.F) {
	lim := DefaultLimits()
	lim.MaxPlayers = 4
	for _, p := range []*smv1.Proposal{
		proposal("p1", "x@a", "y@b"),
		proposal("p2", "x@a", "x@b"),
		proposal("p3", "a@s", "b@s", "c@s", "d@s", "e@s"),
		{ProposalId: "p4", MatchTtlMs: 1, PrepareTimeoutMs: -1, Teams: []*smv1.Team{{}}},
	} {
		b, _ := proto.Marshal(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := new(smv1.Proposal)
		if proto.Unmarshal(b, p) != nil {
			return
		}
		err := ValidateProposal(p, lim)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field == "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not an *InvalidError with a field", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, tm := range p.GetTeams() {
			for _, pl := range tm.GetPlayers() {
				if pl.GetPlayerId() == "" || pl.GetShardId() == "" || seen[pl.GetPlayerId()] {
					t.Fatalf("valid proposal with player %v", pl)
				}
				seen[pl.GetPlayerId()] = true
			}
		}
		if len(seen) == 0 || len(seen) > lim.MaxPlayers || proto.Size(p) > lim.MaxProposalBytes || p.GetProposalId() == "" || p.GetMatchTtlMs() <= 0 {
			t.Fatalf("valid proposal out of limits: %v", p)
		}
	})
}
