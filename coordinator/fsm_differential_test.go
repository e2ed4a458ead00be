package coordinator

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// recObs records the events it observes.
type recObs struct{ evs []Event }

func (r *recObs) Observe(e Event) { r.evs = append(r.evs, e) }

// TestFSMAgreesWithReference drives the FSM and refFSM, the FSM before transactions
// were held compactly, with the same random entries of every command (valid or not,
// several per entry, with snapshots restored and snapshots held open while applying)
// and demands the same results, events, decisions and reads after every batch; a
// snapshot held open must restore to the state of the moment it was taken. For a longer
// search: go test -run TestFSMAgreesWithReference -rapid.checks=3000 ./coordinator/
func TestFSMAgreesWithReference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		no, ro := &recObs{}, &recObs{}
		var nd, rd []*smv1.Decision
		nf := NewFSM(no, func(d *smv1.Decision) { nd = append(nd, d) })
		rf := newRefFSM(ro, func(d *smv1.Decision) { rd = append(rd, d) })
		shards := []string{"a", "b", "c", "d"}
		players := []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6"}
		var index uint64
		var txids []string
		var pids []string
		pickTx := func() string {
			if len(txids) == 0 || rapid.IntRange(0, 9).Draw(rt, "unk") == 0 {
				return "tx-none"
			}
			return rapid.SampledFrom(txids).Draw(rt, "tx")
		}
		genCmd := func() *smv1.Command {
			switch rapid.IntRange(0, 11).Draw(rt, "op") {
			case 0, 1, 2:
				pid := fmt.Sprintf("prop%d", rapid.IntRange(0, 20).Draw(rt, "pid"))
				pids = append(pids, pid)
				nteams := rapid.IntRange(1, 2).Draw(rt, "nteams")
				p := &smv1.Proposal{ProposalId: pid, Mode: "m", MatchTtlMs: int64(rapid.SampledFrom([]int{0, 1000, 60000}).Draw(rt, "ttl"))}
				if rapid.Bool().Draw(rt, "meta") {
					p.Metadata = map[string]string{"k": "v", "r": "eu"}
				}
				for range nteams {
					team := &smv1.Team{}
					for range rapid.IntRange(0, 3).Draw(rt, "np") {
						pl := &smv1.Player{PlayerId: rapid.SampledFrom(append(players, "")).Draw(rt, "pl"),
							ShardId: rapid.SampledFrom(append(shards, "zz")).Draw(rt, "sh")}
						if rapid.Bool().Draw(rt, "attr") {
							pl.Attributes = &smv1.PlayerAttributes{Mmr: 10, LatencyMs: map[string]int32{"x": 1}}
						}
						team.Players = append(team.Players, pl)
					}
					p.Teams = append(p.Teams, team)
				}
				b := &smv1.Begin{Proposal: p, WallUnixMs: int64(rapid.IntRange(0, 1e6).Draw(rt, "wall")),
					Traceparent: rapid.SampledFrom([]string{"", "tp-1"}).Draw(rt, "tp")}
				switch rapid.IntRange(0, 4).Draw(rt, "verdict") {
				case 0:
				case 1:
					b.Verdict = &smv1.PolicyVerdict{Allow: true, Revision: rapid.SampledFrom([]string{"", "r1", "r2"}).Draw(rt, "rev")}
				case 2:
					b.Verdict = &smv1.PolicyVerdict{Allow: false, Revision: "r3", Denials: []*smv1.Denial{{Code: "X", Players: []string{"p1"}}}}
				case 3:
					b.Verdict = &smv1.PolicyVerdict{Allow: false}
				case 4:
					b.Verdict = &smv1.PolicyVerdict{Allow: true, Denials: []*smv1.Denial{{Code: "W"}}}
				}
				return &smv1.Command{Op: &smv1.Command_Begin{Begin: b}}
			case 3, 4:
				d := &smv1.Decide{Txid: pickTx(), Outcome: smv1.Outcome(rapid.IntRange(0, 3).Draw(rt, "o")),
					Reason:  smv1.Reason(rapid.SampledFrom([]int32{0, 3, 4, 7, 300, -5}).Draw(rt, "reason")),
					Message: rapid.SampledFrom([]string{"", "msg"}).Draw(rt, "msg"), WallUnixMs: 99}
				if rapid.Bool().Draw(rt, "det") {
					d.Details = []*smv1.PlayerDetail{{PlayerId: rapid.SampledFrom(players).Draw(rt, "dp"), Code: "BUSY", Message: "m"}}
				}
				return &smv1.Command{Op: &smv1.Command_Decide{Decide: d}}
			case 5, 6:
				return acked(pickTx(), rapid.SampledFrom(append(shards, "zz")).Draw(rt, "ash"))
			case 7:
				return renew(pickTx())
			case 8:
				return release(pickTx())
			case 9:
				return expire(pickTx(), uint64(rapid.IntRange(0, 2).Draw(rt, "seq")))
			case 10:
				var ids []string
				for range rapid.IntRange(0, 3).Draw(rt, "nf") {
					ids = append(ids, pickTx())
				}
				return forget(ids...)
			default:
				switch rapid.IntRange(0, 3).Draw(rt, "shop") {
				case 0:
					return regShard(rapid.SampledFrom(shards).Draw(rt, "rs"))
				case 1:
					return &smv1.Command{Op: &smv1.Command_SetShardState{SetShardState: &smv1.SetShardState{
						ShardId: rapid.SampledFrom(append(shards, "zz")).Draw(rt, "ss"), State: smv1.ShardState(rapid.IntRange(0, 3).Draw(rt, "st"))}}}
				case 2:
					return &smv1.Command{}
				}
				return &smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{Shard: &smv1.ShardInfo{
					ShardId: rapid.SampledFrom(shards).Draw(rt, "rs2"), Region: "x", Labels: map[string]string{"a": "b"}}}}}
			}
		}
		var pending raft.FSMSnapshot
		var pendingWant *smv1.FSMState
		steps := rapid.IntRange(1, 50).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			var logs []*raft.Log
			var entryCmds [][]*smv1.Command
			for range rapid.IntRange(1, 3).Draw(rt, "entries") {
				index++
				var cmds []*smv1.Command
				for range rapid.IntRange(1, 4).Draw(rt, "cmds") {
					cmds = append(cmds, genCmd())
				}
				data, err := EncodeBatch(cmds)
				if err != nil {
					rt.Fatal(err)
				}
				typ := raft.LogCommand
				if rapid.IntRange(0, 20).Draw(rt, "noop") == 0 {
					typ = raft.LogNoop
				}
				logs = append(logs, &raft.Log{Index: index, Type: typ, Data: data})
				entryCmds = append(entryCmds, cmds)
			}
			nout, rout := nf.ApplyBatch(logs), rf.ApplyBatch(logs)
			for k := range nout {
				nr, _ := nout[k].([]CommandResult)
				rr, _ := rout[k].([]CommandResult)
				if len(nr) != len(rr) {
					rt.Fatalf("results %v vs %v", nout[k], rout[k])
				}
				for j := range nr {
					a, b := nr[j], rr[j]
					if b.Txn != nil && (entryCmds[k][j].GetDecide() != nil || entryCmds[k][j].GetAcked() != nil) {
						// A Decide's or an Acked's result is the txn's outcome (FSM.outcome).
						b.Txn = &smv1.TxnRecord{Txid: b.Txn.Txid, State: b.Txn.State, Decision: b.Txn.Decision, BeginIndex: b.Txn.BeginIndex}
						if entryCmds[k][j].GetAcked() != nil { // an Acked's carries the decision's summary
							b.Txn.Decision = summarize(b.Txn.Decision)
						}
					}
					if fmt.Sprint(a.Err) != fmt.Sprint(b.Err) || a.Created != b.Created || a.Expired != b.Expired || !proto.Equal(a.Txn, b.Txn) {
						rt.Fatalf("entry %d cmd %d: new %+v\nref %+v", logs[k].Index, j, a, b)
					}
					if a.Txn != nil && a.Txn.Txid != "" {
						txids = append(txids, a.Txn.Txid)
					}
				}
			}
			if i%4 == 3 || i == steps-1 { // every read, now and then: they cost
				compareFSMs(rt, nf, rf, txids, pids, players, shards)
			} else if !proto.Equal(nf.State(), rf.State()) {
				rt.Fatalf("state\n%v\nref\n%v", nf.State(), rf.State())
			}
			if !reflect.DeepEqual(len(no.evs), len(ro.evs)) {
				rt.Fatalf("%d events vs %d", len(no.evs), len(ro.evs))
			}
			for k := range no.evs {
				a, b := no.evs[k], ro.evs[k]
				if a.Index != b.Index || a.Kind != b.Kind || a.TxID != b.TxID || !reflect.DeepEqual(a.Leases, b.Leases) || !proto.Equal(a.Decision, b.Decision) {
					rt.Fatalf("event %d: %+v vs %+v", k, a, b)
				}
			}
			if len(nd) != len(rd) {
				rt.Fatalf("%d decisions vs %d", len(nd), len(rd))
			}
			for k := range nd {
				if !proto.Equal(nd[k], rd[k]) {
					rt.Fatalf("decision %d: %v vs %v", k, nd[k], rd[k])
				}
			}
			switch rapid.IntRange(0, 12).Draw(rt, "snap") {
			case 0: // restore both from their snapshots
				nsnap, _ := nf.Snapshot()
				sink := &memSink{}
				if err := nsnap.Persist(sink); err != nil {
					rt.Fatal(err)
				}
				nsnap.Release()
				rsnap, _ := rf.Snapshot()
				rsink := &memSink{}
				_ = rsnap.Persist(rsink)
				no.evs, ro.evs = nil, nil
				nf = NewFSM(no, func(d *smv1.Decision) { nd = append(nd, d) })
				rf = newRefFSM(ro, func(d *smv1.Decision) { rd = append(rd, d) })
				if err := nf.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
					rt.Fatal(err)
				}
				if err := rf.Restore(io.NopCloser(bytes.NewReader(rsink.Bytes()))); err != nil {
					rt.Fatal(err)
				}
				pending = nil
				compareFSMs(rt, nf, rf, txids, pids, players, shards)
			case 1: // hold a snapshot open while applying
				if pending == nil {
					pending, _ = nf.Snapshot()
					pendingWant = rf.State()
				}
			case 2:
				if pending != nil {
					sink := &memSink{}
					if err := pending.Persist(sink); err != nil {
						rt.Fatal(err)
					}
					pending.Release()
					pending = nil
					g := NewFSM(nil, nil)
					if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
						rt.Fatal(err)
					}
					if !proto.Equal(g.State(), pendingWant) {
						rt.Fatalf("held snapshot\n%v\nwant\n%v", g.State(), pendingWant)
					}
				}
			}
		}
	})
}

func compareFSMs(rt *rapid.T, nf *FSM, rf *refFSM, txids, pids, players, shards []string) {
	if a, b := nf.State(), rf.State(); !proto.Equal(a, b) {
		rt.Fatalf("state\n%v\nref\n%v", a, b)
	}
	if nf.Counts() != rf.Counts() || !reflect.DeepEqual(nf.Finished(), rf.Finished()) || !maps.Equal(nf.InDoubtByShard(), rf.InDoubtByShard()) ||
		!reflect.DeepEqual(nf.ActiveMatches(), rf.ActiveMatches()) || nf.AppliedIndex() != rf.AppliedIndex() || nf.MaxToken() != rf.MaxToken() ||
		nf.pristine() != rf.pristine() {
		rt.Fatal("summaries differ")
	}
	nu, ru := nf.Unfinished(), rf.Unfinished()
	if len(nu) != len(ru) {
		rt.Fatal("unfinished differ")
	}
	for i := range nu {
		if !proto.Equal(nu[i], ru[i]) {
			rt.Fatal("unfinished differ")
		}
	}
	for _, id := range append(txids, "tx-none") {
		a, aok := nf.Txn(id)
		b, bok := rf.Txn(id)
		if aok != bok || !proto.Equal(a, b) {
			rt.Fatalf("Txn(%s) %v vs %v", id, a, b)
		}
	}
	for _, pid := range pids {
		a, aok := nf.TxnByProposal(pid)
		b, bok := rf.TxnByProposal(pid)
		if aok != bok || !proto.Equal(a, b) {
			rt.Fatalf("TxnByProposal(%s) %v vs %v", pid, a, b)
		}
	}
	for _, p := range players {
		a, aok := nf.Lease(p)
		b, bok := rf.Lease(p)
		if aok != bok || a != b {
			rt.Fatalf("Lease(%s)", p)
		}
	}
	for _, s := range append(shards, "zz") {
		a, aok := nf.Shard(s)
		b, bok := rf.Shard(s)
		if aok != bok || !proto.Equal(a, b) {
			rt.Fatalf("Shard(%s)", s)
		}
	}
}
