package coordinator

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// model is a deliberately simple reference for the FSM: plain maps, no lease table, no
// state machine package. The property test drives both with the same random commands
// and demands they agree.
type model struct {
	txns      map[string]*modelTxn
	proposals map[string]string
	holders   map[string]string // player -> txid
	lastToken map[string]uint64 // player -> highest token granted
}

type modelTxn struct {
	players  []string
	shards   []string
	state    smv1.TxnState
	outcome  smv1.Outcome
	acked    map[string]bool
	leaseEnd string
	seq      uint64
	token    uint64
}

func (m *model) live(txid string) bool {
	t := m.txns[txid]
	return t != nil && t.outcome == committed && t.leaseEnd == ""
}

func TestFSMAgreesWithModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		shards := []string{"a", "b", "c"}
		h := newFSMHarness(rt, shards...)
		m := &model{txns: map[string]*modelTxn{}, proposals: map[string]string{}, holders: map[string]string{}, lastToken: map[string]uint64{}}
		players := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
		txids := func() []string {
			var out []string
			for id := range m.txns {
				out = append(out, id)
			}
			sort.Strings(out)
			return out
		}
		pickTx := func(rt *rapid.T) string {
			ids := txids()
			if len(ids) == 0 || rapid.IntRange(0, 9).Draw(rt, "unknownTx") == 0 {
				return "tx-none"
			}
			return rapid.SampledFrom(ids).Draw(rt, "txid")
		}
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			switch op := rapid.IntRange(0, 6).Draw(rt, "op"); op {
			case 0: // Begin
				pid := fmt.Sprintf("prop%d", rapid.IntRange(0, 15).Draw(rt, "pid"))
				n := rapid.IntRange(1, 3).Draw(rt, "n")
				perm := rapid.Permutation(players).Draw(rt, "perm")[:n]
				var ps []string
				for _, p := range perm {
					ps = append(ps, p+"@"+rapid.SampledFrom(shards).Draw(rt, "shard"))
				}
				r := h.mustOK(h.apply(begin(proposal(pid, ps...)))[0])
				if old, dup := m.proposals[pid]; dup {
					if r.Created || r.Txn.Txid != old {
						rt.Fatalf("repeat of %s made %s (created=%v), want %s", pid, r.Txn.Txid, r.Created, old)
					}
					continue
				}
				mt := &modelTxn{players: perm, acked: map[string]bool{}, token: r.Txn.Token}
				for _, p := range ps {
					mt.shards = append(mt.shards, p[len(p)-1:])
				}
				sort.Strings(mt.shards)
				mt.shards = slices.Compact(mt.shards)
				busy := false
				for _, p := range perm {
					if _, b := m.holders[p]; b {
						busy = true
					}
				}
				if busy {
					mt.state, mt.outcome = smv1.TxnState_TXN_STATE_DONE, aborted
					if r.Txn.Decision.Reason != smv1.Reason_REASON_PLAYER_LEASED {
						rt.Fatalf("busy begin reason %s", r.Txn.Decision.Reason)
					}
				} else {
					mt.state = smv1.TxnState_TXN_STATE_PREPARING
					for _, p := range perm {
						if r.Txn.Token <= m.lastToken[p] {
							rt.Fatalf("token for %s not increasing: %d after %d", p, r.Txn.Token, m.lastToken[p])
						}
						m.lastToken[p] = r.Txn.Token
						m.holders[p] = r.Txn.Txid
					}
				}
				m.txns[r.Txn.Txid] = mt
				m.proposals[pid] = r.Txn.Txid
			case 1: // Decide
				txid := pickTx(rt)
				o := rapid.SampledFrom([]smv1.Outcome{committed, aborted}).Draw(rt, "outcome")
				r := h.apply(decide(txid, o))[0]
				mt := m.txns[txid]
				if mt == nil {
					if r.Err == nil {
						rt.Fatal("decide of unknown txn succeeded")
					}
					continue
				}
				if mt.state == smv1.TxnState_TXN_STATE_PREPARING {
					mt.outcome = o
					if o == committed {
						mt.state = smv1.TxnState_TXN_STATE_COMMITTED
					} else {
						mt.state = smv1.TxnState_TXN_STATE_ABORTED
						for _, p := range mt.players {
							delete(m.holders, p)
						}
					}
				}
				if r.Txn.Decision.Outcome != mt.outcome {
					rt.Fatalf("decision of %s is %s, model %s", txid, r.Txn.Decision.Outcome, mt.outcome)
				}
			case 2: // Acked
				txid := pickTx(rt)
				shard := rapid.SampledFrom(shards).Draw(rt, "ackShard")
				r := h.apply(acked(txid, shard))[0]
				mt := m.txns[txid]
				okWant := mt != nil && mt.state != smv1.TxnState_TXN_STATE_PREPARING && slices.Contains(mt.shards, shard)
				if (r.Err == nil) != okWant {
					rt.Fatalf("ack %s/%s err=%v, model ok=%v", txid, shard, r.Err, okWant)
				}
				if okWant {
					mt.acked[shard] = true
					if len(mt.acked) == len(mt.shards) {
						mt.state = smv1.TxnState_TXN_STATE_DONE
					}
				}
			case 3, 4: // Renew, Release
				txid := pickTx(rt)
				live := m.live(txid)
				var r CommandResult
				if op == 3 {
					r = h.apply(renew(txid))[0]
				} else {
					r = h.apply(release(txid))[0]
				}
				if (r.Err == nil) != live {
					rt.Fatalf("op %d on %s err=%v, model live=%v", op, txid, r.Err, live)
				}
				if live && op == 3 {
					m.txns[txid].seq++
				}
				if live && op == 4 {
					m.txns[txid].leaseEnd = "released"
					for _, p := range m.txns[txid].players {
						delete(m.holders, p)
					}
				}
			case 5: // Expire with the current or a stale seq
				txid := pickTx(rt)
				live := m.live(txid)
				var seq uint64
				if live {
					seq = m.txns[txid].seq
				}
				if rapid.Bool().Draw(rt, "stale") && seq > 0 {
					seq--
				}
				r := h.apply(expire(txid, seq))[0]
				if (r.Err == nil) != live {
					rt.Fatalf("expire %s err=%v, model live=%v", txid, r.Err, live)
				}
				want := live && seq == m.txns[txid].seq
				if r.Expired != want {
					rt.Fatalf("expire %s seq %d: expired=%v want %v", txid, seq, r.Expired, want)
				}
				if want {
					m.txns[txid].leaseEnd = "expired"
					for _, p := range m.txns[txid].players {
						delete(m.holders, p)
					}
				}
			case 6: // Forget
				txid := pickTx(rt)
				h.mustOK(h.apply(forget(txid))[0])
				if mt := m.txns[txid]; mt != nil && mt.state == smv1.TxnState_TXN_STATE_DONE && (mt.outcome != committed || mt.leaseEnd != "") {
					delete(m.txns, txid)
					for pid, id := range m.proposals {
						if id == txid {
							delete(m.proposals, pid)
						}
					}
				}
			}
			checkAgainstModel(rt, h.f, m)
		}
		// Snapshot and restore reproduce the state exactly.
		snap, _ := h.f.Snapshot()
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			rt.Fatal(err)
		}
		g := NewFSM(nil, nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			rt.Fatal(err)
		}
		if !proto.Equal(h.f.State(), g.State()) {
			rt.Fatal("restore differs")
		}
		if !maps.Equal(h.f.open, g.open) {
			rt.Fatalf("restored open index %v, was %v", g.open, h.f.open)
		}
	})
}

func checkAgainstModel(rt *rapid.T, f *FSM, m *model) {
	st := f.State()
	if len(st.Txns) != len(m.txns) {
		rt.Fatalf("FSM has %d txns, model %d", len(st.Txns), len(m.txns))
	}
	for _, tx := range st.Txns {
		mt := m.txns[tx.Txid]
		if mt == nil || mt.state != tx.State || mt.leaseEnd != tx.LeaseEnd {
			rt.Fatalf("txn %s: FSM %s/%q, model %+v", tx.Txid, tx.State, tx.LeaseEnd, mt)
		}
	}
	// The open index is exactly the model's unfinished txns, and what reads it agrees.
	var open []string
	for id, mt := range m.txns {
		if mt.state != smv1.TxnState_TXN_STATE_DONE {
			open = append(open, id)
		}
	}
	slices.Sort(open)
	var got []string
	for _, r := range f.Unfinished() {
		got = append(got, r.GetTxid())
	}
	if !slices.Equal(got, open) || len(f.open) != len(open) {
		rt.Fatalf("unfinished %v (open index %d), model %v", got, len(f.open), open)
	}
	if c := f.Counts(); c.Preparing+c.Undelivered != len(open) {
		rt.Fatalf("counts %+v, model %d unfinished", c, len(open))
	}
	if len(st.Leases) != len(m.holders) {
		rt.Fatalf("FSM holds %d leases, model %d", len(st.Leases), len(m.holders))
	}
	for _, l := range st.Leases {
		if m.holders[l.PlayerId] != l.Txid {
			rt.Fatalf("lease of %s held by %s, model %s", l.PlayerId, l.Txid, m.holders[l.PlayerId])
		}
		mt := m.txns[l.Txid]
		wantState := smv1.LeaseState_LEASE_STATE_RESERVED
		if mt.outcome == committed {
			wantState = smv1.LeaseState_LEASE_STATE_ACTIVE
		}
		if l.State != wantState || l.RenewSeq != mt.seq || l.Token != mt.token {
			rt.Fatalf("lease %v, model txn %+v", l, mt)
		}
	}
}

// FuzzApplyEntry feeds arbitrary bytes to the FSM as log entries: it must never panic,
// and an entry that does not decode must change nothing.
func FuzzApplyEntry(f *testing.F) {
	good, _ := EncodeBatch([]*smv1.Command{begin(proposal("p1", "x@a", "y@b")), decide("tx-2-0", committed)})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{logFormatV1})
	f.Add([]byte{logFormatV1, 0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newFSMHarness(t, "a", "b")
		h.mustOK(h.apply(begin(proposal("seed", "z@a")))[0])
		before := h.f.State()
		_, decErr := DecodeBatch(data)
		h.index++
		h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data})
		if decErr != nil {
			after := h.f.State()
			before.AppliedIndex, after.AppliedIndex = 0, 0
			if !proto.Equal(before, after) {
				t.Fatal("undecodable entry changed state")
			}
		}
		// Whatever happened, the lease table and txns agree.
		for _, l := range h.f.State().Leases {
			if _, ok := h.f.Txn(l.Txid); !ok {
				t.Fatalf("lease %v held by unknown txn", l)
			}
		}
	})
}
