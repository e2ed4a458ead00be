package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestAdminAPIOnRealCluster drives proposals through a real 3-node cluster and checks
// every endpoint against it, then leadership transfer, voter changes, a partition and a
// killed node.
func TestAdminAPIOnRealCluster(t *testing.T) {
	c := newAdminCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	decisions := map[string]*smv1.Decision{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("p-%d", i)
		d, err := c.lc.Propose(ctx, duel(id, fmt.Sprintf("alice-%d", i), fmt.Sprintf("bob-%d", i)))
		if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("propose %s: %v %v", id, d, err)
		}
		decisions[id] = d
	}
	// alice-1 is in p-1's match: PLAYER_LEASED.
	if d, err := c.lc.Propose(ctx, duel("p-busy", "alice-1", "carol")); err != nil || d.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("busy proposal: %v %v", d, err)
	}
	leader := eventually(t, 10*time.Second, c.settled)
	follower := (leader + 1) % 3
	sts := c.statuses()
	l := sts[leader]

	t.Run("health and status", func(t *testing.T) {
		for i := range 3 {
			if code, b := c.call(i, "GET", "/healthz", "", ""); code != 200 {
				t.Errorf("healthz %d: %d %s", i, code, b)
			}
			if code, b := c.call(i, "GET", "/readyz", "", ""); code != 200 || !bytes.Contains(b, []byte(`"ready":true`)) {
				t.Errorf("readyz %d: %d %s", i, code, b)
			}
		}
		for i, st := range sts {
			if (st.Role == "leader") != (i == leader) || st.NodeID != c.lc.NodeID(i) || st.Term != l.Term || st.Term == 0 {
				t.Errorf("node %d: %+v", i, st)
			}
			want := admin.Counts{Txns: 4, Leases: 6, Shards: 2}
			if st.Counts != want || st.CommitIndex == 0 || st.LastLogIndex < st.CommitIndex || st.UptimeSeconds <= 0 {
				t.Errorf("node %d counts %+v indexes %d/%d/%d", i, st.Counts, st.CommitIndex, st.AppliedIndex, st.LastLogIndex)
			}
			if len(st.Peers) != 3 {
				t.Fatalf("node %d peers %+v", i, st.Peers)
			}
			for _, p := range st.Peers {
				if p.Suffrage != "voter" || p.Leader != (p.ID == l.NodeID) || p.Self != (p.ID == st.NodeID) {
					t.Errorf("node %d peer %+v", i, p)
				}
			}
		}
	})

	t.Run("txn reads", func(t *testing.T) {
		d := decisions["p-2"]
		for _, id := range []string{d.GetTxid(), "p-2"} {
			code, b := c.call(leader, "GET", "/v1/txns/"+id, "", "")
			var rec smv1.TxnRecord
			if code != 200 || protoUnmarshal(b, &rec) != nil || rec.GetTxid() != d.GetTxid() ||
				rec.GetDecision().GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED || !bytes.Contains(b, []byte(`"proposal_id":"p-2"`)) {
				t.Errorf("GET /v1/txns/%s on the leader: %d %s", id, code, b)
			}
		}
		code, b := c.call(follower, "GET", "/v1/txns/"+d.GetTxid(), "", "")
		e := apiError(t, b)
		if code != 421 || e.Code != admin.CodeNotLeader || e.LeaderID != l.NodeID {
			t.Errorf("follower read: %d %s", code, b)
		}
		code, b = c.call(follower, "GET", "/v1/txns/p-2?stale=true", "", "")
		if code != 200 || !bytes.Contains(b, []byte(d.GetTxid())) {
			t.Errorf("stale follower read: %d %s", code, b)
		}
		if code, b := c.call(leader, "GET", "/v1/txns/no-such-txn", "", ""); code != 404 || apiError(t, b).Code != admin.CodeNotFound {
			t.Errorf("unknown txn: %d %s", code, b)
		}
		if code, b := c.call(follower, "GET", "/v1/txns?state=preparing", "", ""); code != 200 || !bytes.Contains(b, []byte(`"txns":[]`)) {
			t.Errorf("preparing list: %d %s", code, b)
		}
	})

	t.Run("leases and shards", func(t *testing.T) {
		d := decisions["p-1"]
		for i := range 3 {
			code, b := c.call(i, "GET", "/v1/leases/alice-1", "", "")
			var lr smv1.LeaseRecord
			if code != 200 || protoUnmarshal(b, &lr) != nil || lr.GetTxid() != d.GetTxid() ||
				lr.GetState() != smv1.LeaseState_LEASE_STATE_ACTIVE || lr.GetToken() != d.GetPlayers()[0].GetFencingToken() ||
				lr.GetTtlMs() != time.Minute.Milliseconds() {
				t.Errorf("lease on node %d: %d %s", i, code, b)
			}
		}
		if code, b := c.call(leader, "GET", "/v1/leases/carol", "", ""); code != 404 {
			t.Errorf("carol's lease: %d %s", code, b)
		}
		if code, b := c.call(follower, "GET", "/v1/shards", "", ""); code != 200 ||
			!bytes.Contains(b, []byte(`"shard_id":"s1"`)) || !bytes.Contains(b, []byte(`"shard_id":"s2"`)) {
			t.Errorf("shards: %d %s", code, b)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for i := range 3 {
			code, b := c.call(i, "GET", "/metrics", "", "")
			if code != 200 {
				t.Fatalf("metrics %d: %d", i, code)
			}
			text := string(b)
			want := map[string]float64{
				`shardmatch_decisions_total{node="%s",outcome="committed",reason="none"}`:        3,
				`shardmatch_decisions_total{node="%s",outcome="aborted",reason="player_leased"}`: 1,
				`shardmatch_phase_duration_seconds_count{node="%s",phase="prepare"}`:             3,
				`shardmatch_raft_term{node="%s"}`:                                                float64(l.Term),
				`shardmatch_leases_active{node="%s"}`:                                            6,
				`shardmatch_shards_registered{node="%s"}`:                                        2,
				`shardmatch_txns_in_flight{node="%s",state="preparing"}`:                         0,
				`shardmatch_ready{node="%s"}`:                                                    1,
				`shardmatch_proposals_total{node="%s"}`:                                          0,
			}
			for series, v := range want {
				if got, ok := sample(text, fmt.Sprintf(series, c.lc.NodeID(i))); !ok || got != v {
					t.Errorf("node %d: %s = %v (found %v), want %v", i, fmt.Sprintf(series, c.lc.NodeID(i)), got, ok, v)
				}
			}
			isLeader, _ := sample(text, fmt.Sprintf(`shardmatch_is_leader{node="%s"}`, c.lc.NodeID(i)))
			state, _ := sample(text, fmt.Sprintf(`shardmatch_raft_state{node="%s"}`, c.lc.NodeID(i)))
			commit, _ := sample(text, fmt.Sprintf(`shardmatch_raft_commit_index{node="%s"}`, c.lc.NodeID(i)))
			if (isLeader == 1) != (i == leader) || (state == 2) != (i == leader) || commit < 4 {
				t.Errorf("node %d: is_leader %v raft_state %v commit %v", i, isLeader, state, commit)
			}
		}
	})

	t.Run("status client and table", func(t *testing.T) {
		sc := &admin.StatusClient{HTTP: c.hc}
		addrs := []string{c.url(0), strings.TrimPrefix(c.url(1), "http://"), c.url(2), "127.0.0.1:1"}
		got := sc.FetchAll(ctx, addrs)
		var out strings.Builder
		if err := admin.FormatCluster(&out, got); err != nil {
			t.Fatal(err)
		}
		table := out.String()
		t.Logf("\n%s", table)
		for i := range 3 {
			if got[i].Err != nil || got[i].NodeID != c.lc.NodeID(i) || !strings.Contains(table, c.lc.NodeID(i)+" ") {
				t.Errorf("node %d missing: %+v", i, got[i])
			}
		}
		if got[3].Err == nil || !strings.Contains(table, "127.0.0.1:1  unreachable") ||
			!strings.Contains(table, "3/4 nodes reachable, 3 ready; leader "+l.NodeID) {
			t.Errorf("table:\n%s", table)
		}
	})

	t.Run("operator actions", func(t *testing.T) {
		if code, b := c.call(leader, "POST", "/v1/leader/transfer", "", ""); code != 401 {
			t.Fatalf("transfer without token: %d %s", code, b)
		}
		if code, b := c.call(follower, "POST", "/v1/voters", token, `{"id":"c4","addr":"c4"}`); code != 421 || apiError(t, b).LeaderID != l.NodeID {
			t.Fatalf("add voter on a follower: %d %s", code, b)
		}
		// Add a voter that never comes up (quorum 3 of 4 still holds), then remove it.
		if code, b := c.call(leader, "POST", "/v1/voters", token, `{"id":"c4","addr":"c4"}`); code != 200 {
			t.Fatalf("add voter: %d %s", code, b)
		}
		if n := len(c.statuses()[leader].Peers); n != 4 {
			t.Fatalf("%d peers after adding c4", n)
		}
		if code, b := c.call(leader, "DELETE", "/v1/voters/c4", token, ""); code != 200 {
			t.Fatalf("remove voter: %d %s", code, b)
		}
		if code, b := c.call(leader, "DELETE", "/v1/voters/c4", token, ""); code != 404 {
			t.Fatalf("remove it again: %d %s", code, b)
		}
		if n := len(c.statuses()[leader].Peers); n != 3 {
			t.Fatalf("%d peers after removing c4", n)
		}
		// Force-abort of a decided txn is refused: the first decision stands.
		if code, b := c.call(leader, "POST", "/v1/txns/p-1/abort", token, ""); code != 409 {
			t.Fatalf("force-abort of a decided txn: %d %s", code, b)
		}
		if code, b := c.call(leader, "POST", "/v1/leader/transfer", token, ""); code != 200 {
			t.Fatalf("transfer: %d %s", code, b)
		}
		next := eventually(t, 10*time.Second, c.settled)
		if next == leader {
			t.Fatalf("leader still %s after a transfer", l.NodeID)
		}
		leader = next
	})

	t.Run("partitioned and killed nodes are not ready", func(t *testing.T) {
		cut := (leader + 1) % 3
		c.lc.Partition(cut)
		eventually(t, 10*time.Second, func() (struct{}, error) {
			code, b := c.call(cut, "GET", "/readyz", "", "")
			if code != 503 || !bytes.Contains(b, []byte("no leader known")) {
				return struct{}{}, fmt.Errorf("readyz of the cut node: %d %s", code, b)
			}
			return struct{}{}, nil
		})
		c.lc.Heal()
		eventually(t, 15*time.Second, c.settled)

		_ = c.lc.Kill(cut)
		code, b := c.call(cut, "GET", "/readyz", "", "")
		if code != 503 || !bytes.Contains(b, []byte("shut down")) {
			t.Fatalf("readyz of a killed node: %d %s", code, b)
		}
		if code, _ := c.call(cut, "GET", "/healthz", "", ""); code != 200 {
			t.Fatalf("healthz of a killed node's process: %d", code)
		}
		if st := c.statuses()[cut]; st.Role != "shutdown" || st.Ready {
			t.Fatalf("status of a killed node: %+v", st)
		}
	})
}

func apiError(t *testing.T, b []byte) *admin.Error {
	t.Helper()
	var body struct{ Error *admin.Error }
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil {
		t.Fatalf("not an error: %s", b)
	}
	return body.Error
}

// sample finds an exact series in Prometheus text.
func sample(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}
