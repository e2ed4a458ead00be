package admin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// content is a state without its applied index, which a restore moves.
func content(st *smv1.FSMState) *smv1.FSMState {
	st = proto.Clone(st).(*smv1.FSMState)
	st.AppliedIndex = 0
	return st
}

// commit has n duels committed on c, between players named after tag, and returns
// their decisions. A duel aborted by a leader change (the machine is shared, elections
// happen) is proposed again under a new proposal id.
func (c *adminCluster) commit(tag string, n int) []*smv1.Decision {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*smv1.Decision
	for i := range n {
		players := fmt.Sprintf("%s-%d", tag, i)
		for try := 0; ; try++ {
			d, err := c.lc.Propose(ctx, duel(fmt.Sprintf("%s-%d", players, try), "alice-"+players, "bob-"+players))
			if err == nil && d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
				out = append(out, d)
				break
			}
			if err != nil || d.GetReason() != smv1.Reason_REASON_COORDINATOR_FAILOVER || try > 5 {
				c.t.Fatalf("propose %s: %v %v", players, d, err)
			}
		}
	}
	return out
}

// leaderState is the settled leader's index and its FSM state.
func (c *adminCluster) leaderState() (int, *smv1.FSMState) {
	c.t.Helper()
	l := eventually(c.t, 15*time.Second, c.settled)
	return l, c.lc.Node(l).FSM().State()
}

// TestSnapshotSaveRestoreIntoNewCluster saves a snapshot of a real 3-node cluster over
// HTTP, checks what it holds, restores it into a new 3-node cluster with fresh data
// directories, and finds the same transactions, leases (with their fencing tokens) and
// shards on every node of the new cluster; then bad files are refused there with a
// typed 400 and no change, and the new cluster goes on issuing higher tokens.
func TestSnapshotSaveRestoreIntoNewCluster(t *testing.T) {
	c := newAdminCluster(t)
	ds := c.commit("m", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.lc.OnLeader(ctx, func(n *coordinator.Node) error {
		return n.Release(ctx, ds[0].GetTxid())
	}); err != nil {
		t.Fatal(err)
	}
	leader, want := c.leaderState()
	follower := (leader + 1) % 3

	if code, b := c.call(leader, "GET", "/v1/snapshot", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("snapshot without a token: %d %s", code, b)
	}
	if code, b := c.call(follower, "GET", "/v1/snapshot", token, ""); code != http.StatusMisdirectedRequest ||
		apiError(t, b).Code != admin.CodeNotLeader {
		t.Fatalf("snapshot on a follower: %d %s", code, b)
	}
	if code, b := c.call(follower, "GET", "/v1/snapshot?stale=true", token, ""); code != 200 {
		t.Fatalf("stale snapshot on a follower: %d %s", code, b)
	}
	code, snap := c.call(leader, "GET", "/v1/snapshot", token, "")
	if code != 200 {
		t.Fatalf("snapshot: %d %s", code, snap)
	}
	sum, st, err := coordinator.InspectSnapshot(bytes.NewReader(snap), 0)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if !proto.Equal(content(st), content(want)) {
		t.Fatalf("snapshot state differs from the leader's:\n got %v\nwant %v", st, want)
	}
	if sum.Txns != len(want.GetTxns()) || sum.Txns < 4 || sum.Leases != 6 || sum.Shards != 2 || sum.MaxToken == 0 ||
		sum.Index == 0 || sum.Term == 0 {
		t.Fatalf("summary %+v", sum)
	}

	c2 := newAdminCluster(t)
	l2, _ := c2.leaderState()
	f2 := (l2 + 1) % 3
	code, b := c2.call(f2, "POST", "/v1/snapshot/restore", token, string(snap))
	if e := apiError(t, b); code != http.StatusMisdirectedRequest || e.Code != admin.CodeNotLeader || e.LeaderID != c2.lc.NodeID(l2) {
		t.Fatalf("restore on a follower: %d %s", code, b)
	}
	if code, b := c2.call(l2, "POST", "/v1/snapshot/restore", "", string(snap)); code != http.StatusUnauthorized {
		t.Fatalf("restore without a token: %d %s", code, b)
	}
	code, b = c2.call(l2, "POST", "/v1/snapshot/restore", token, string(snap))
	var res admin.RestoreResponse
	if code != 200 || json.Unmarshal(b, &res) != nil || !res.OK || res.Forced || res.Snapshot.Index != sum.Index ||
		res.Index <= sum.Index || res.Snapshot.Txns != sum.Txns {
		t.Fatalf("restore: %d %s", code, b)
	}
	l2, got := c2.leaderState()
	for i := range 3 {
		if st := c2.lc.Node(i).FSM().State(); !proto.Equal(content(st), content(want)) {
			t.Fatalf("node %d after restore:\n got %v\nwant %v", i, st, want)
		}
	}
	wantToken := ds[1].GetPlayers()[0].GetFencingToken()
	var lease smv1.LeaseRecord
	if code, b := c2.call(l2, "GET", "/v1/leases/alice-m-1", "", ""); code != 200 || protoUnmarshal(b, &lease) != nil ||
		wantToken == 0 || lease.GetToken() != wantToken {
		t.Fatalf("lease of alice-m-1 after restore: %d %s (want token %d)", code, b, wantToken)
	}

	t.Run("bad files change nothing", func(t *testing.T) {
		before, last := got, c2.lc.Node(l2).Raft().LastIndex()
		flipped := bytes.Clone(snap)
		flipped[len(flipped)-sha256Size-1] ^= 0x01 // last data byte
		wrongVersion := bytes.Clone(snap)
		binary.BigEndian.PutUint16(wrongVersion[len(coordinator.SnapshotMagic):], 2)
		for name, tc := range map[string]struct {
			body  []byte
			field string
		}{
			"one byte flipped": {flipped, "snapshot.checksum"},
			"truncated":        {snap[:len(snap)-40], "snapshot.truncated"},
			"wrong version":    {wrongVersion, "snapshot.version"},
			"not a snapshot":   {[]byte(`{"txns":[]}`), "snapshot.magic"},
			"trailing bytes":   {append(bytes.Clone(snap), 0), "snapshot.trailing"},
			"empty":            {nil, "snapshot.truncated"},
		} {
			code, b := c2.call(l2, "POST", "/v1/snapshot/restore?force=true", token, string(tc.body))
			if e := apiError(t, b); code != http.StatusBadRequest || e.Code != admin.CodeInvalid || e.Field != tc.field {
				t.Errorf("%s: %d %s, want 400 %s", name, code, b, tc.field)
			}
		}
		if st := c2.lc.Node(l2).FSM().State(); !proto.Equal(st, before) || c2.lc.Node(l2).Raft().LastIndex() != last {
			t.Fatalf("a refused file changed the state:\n got %v\nwant %v", st, before)
		}
	})

	t.Run("tokens keep rising", func(t *testing.T) {
		// alice-m-1 is still in her restored match; a new match gets a token above
		// every token the snapshot holds.
		d, err := c2.lc.Propose(ctx, duel("after-busy", "alice-m-1", "zed"))
		if err != nil || d.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
			t.Fatalf("restored lease not enforced: %v %v", d, err)
		}
		d = c2.commit("after", 1)[0]
		if tok := d.GetPlayers()[0].GetFencingToken(); tok <= sum.MaxToken {
			t.Fatalf("token after restore %d, snapshot max %d", tok, sum.MaxToken)
		}
	})
}

const sha256Size = 32

// TestSnapshotRestoreRefusesRollback: an older snapshot onto a cluster that has moved
// on is refused with CONFLICT and changes nothing; force=true restores it, and fencing
// tokens still rise above every token the live cluster had issued.
func TestSnapshotRestoreRefusesRollback(t *testing.T) {
	c := newAdminCluster(t)
	c.commit("old", 2)
	leader, _ := c.leaderState()
	code, snap := c.call(leader, "GET", "/v1/snapshot", token, "")
	if code != 200 {
		t.Fatalf("snapshot: %d %s", code, snap)
	}
	saved, _, err := coordinator.InspectSnapshot(bytes.NewReader(snap), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.commit("new", 3)
	leader, before := c.leaderState()
	last := c.lc.Node(leader).Raft().LastIndex()

	code, b := c.call(leader, "POST", "/v1/snapshot/restore", token, string(snap))
	if e := apiError(t, b); code != http.StatusConflict || e.Code != admin.CodeConflict {
		t.Fatalf("older snapshot: %d %s", code, b)
	}
	if st := c.lc.Node(leader).FSM().State(); !proto.Equal(st, before) || c.lc.Node(leader).Raft().LastIndex() != last {
		t.Fatal("a refused restore changed the state")
	}
	if code, b := c.call(leader, "POST", "/v1/snapshot/restore?force=maybe", token, string(snap)); code != 400 {
		t.Fatalf("force=maybe: %d %s", code, b)
	}

	code, b = c.call(leader, "POST", "/v1/snapshot/restore?force=true", token, string(snap))
	var res admin.RestoreResponse
	if code != 200 || json.Unmarshal(b, &res) != nil || !res.Forced || res.PreviousIndex < last || res.Index <= last {
		t.Fatalf("forced restore: %d %s", code, b)
	}
	_, after := c.leaderState()
	if after.GetMaxToken() != saved.MaxToken || len(after.GetTxns()) != saved.Txns {
		t.Fatalf("after the forced restore: max token %d txns %d, want %d and %d", after.GetMaxToken(), len(after.GetTxns()),
			saved.MaxToken, saved.Txns)
	}
	// new-* players are free again in the coordinator's eyes; the shards hold newer
	// tokens for them, and the next token exceeds those.
	tok := c.commit("new", 1)[0].GetPlayers()[0].GetFencingToken()
	if tok <= before.GetMaxToken() {
		t.Fatalf("token after a forced restore %d <= the live cluster's max %d", tok, before.GetMaxToken())
	}
	if got := tok >> 16; got <= last {
		t.Fatalf("token index %d <= pre-restore last index %d", got, last)
	}
}
