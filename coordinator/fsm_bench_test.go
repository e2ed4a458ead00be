package coordinator

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// BenchmarkFSMApply measures the FSM alone (decode + apply) for the commands of one
// 2-player, 2-shard match: Begin, Decide(COMMIT), two Acked, Release. "per-command"
// applies each in its own entry; "batch-N" packs N matches' commands of one kind per
// entry, as group commit does under load. ns/op is per match.
func BenchmarkFSMApply(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		name := "per-command"
		if batch > 1 {
			name = fmt.Sprintf("batch-%d", batch)
		}
		b.Run(name, func(b *testing.B) {
			h := newFSMHarness(b, "a", "b")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				begins := make([]*smv1.Command, n)
				for j := range begins {
					k := i + j
					begins[j] = begin(proposal(fmt.Sprintf("p%d", k), fmt.Sprintf("x%d@a", k), fmt.Sprintf("y%d@b", k)))
				}
				res := applyAll(h, begins, batch)
				var decides, acks, rels []*smv1.Command
				for _, r := range res {
					decides = append(decides, decide(r.Txn.Txid, committed))
					acks = append(acks, acked(r.Txn.Txid, "a"), acked(r.Txn.Txid, "b"))
					rels = append(rels, release(r.Txn.Txid))
				}
				applyAll(h, decides, batch)
				applyAll(h, acks, batch)
				applyAll(h, rels, batch)
			}
		})
	}
}

// applyAll applies cmds in entries of at most batch commands.
func applyAll(h *fsmHarness, cmds []*smv1.Command, batch int) []CommandResult {
	var out []CommandResult
	for len(cmds) > 0 {
		n := min(batch, len(cmds))
		res := h.apply(cmds[:n]...)
		for _, r := range res {
			if r.Err != nil {
				h.t.Fatal(r.Err)
			}
		}
		out = append(out, res...)
		cmds = cmds[n:]
	}
	return out
}

// BenchmarkDecodeBatch measures decoding one entry of 256 Begins.
func BenchmarkDecodeBatch(b *testing.B) {
	var cmds []*smv1.Command
	for k := 0; k < 256; k++ {
		cmds = append(cmds, begin(proposal(fmt.Sprintf("p%d", k), fmt.Sprintf("x%d@a", k), fmt.Sprintf("y%d@b", k))))
	}
	data, err := EncodeBatch(cmds)
	if err != nil {
		b.Fatal(err)
	}
	l := &raft.Log{Data: data}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeBatch(l.Data); err != nil {
			b.Fatal(err)
		}
	}
}
