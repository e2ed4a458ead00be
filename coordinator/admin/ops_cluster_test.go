package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func decode[T any](t *testing.T, what string, code int, b []byte) T {
	t.Helper()
	var v T
	if code != 200 {
		t.Fatalf("%s: %d %s", what, code, b)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, b)
	}
	return v
}

// getJSON GETs path on node and decodes a 200 answer.
func getJSON[T any](t *testing.T, c *adminCluster, node int, path string) T {
	t.Helper()
	code, b := c.call(node, "GET", path, "", "")
	return decode[T](t, path, code, b)
}

func txids(t *testing.T, l admin.TxnList) []string {
	t.Helper()
	var out []string
	for _, raw := range l.Txns {
		var rec smv1.TxnRecord
		if err := protoUnmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.GetTxid())
	}
	return out
}

// TestTxnListOnRealCluster: the list pages every txn once in log order on any node,
// and its filters and bad parameters behave as documented.
func TestTxnListOnRealCluster(t *testing.T) {
	c := newAdminCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []string
	for i := range 7 {
		d, err := c.lc.Propose(ctx, duel(fmt.Sprintf("p-%d", i), fmt.Sprintf("a-%d", i), fmt.Sprintf("b-%d", i)))
		if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("propose: %v %v", d, err)
		}
		want = append(want, d.GetTxid())
	}
	busy, err := c.lc.Propose(ctx, duel("p-busy", "a-0", "zed"))
	if err != nil || busy.GetReason() != smv1.Reason_REASON_PLAYER_LEASED {
		t.Fatalf("busy: %v %v", busy, err)
	}
	leader := eventually(t, 10*time.Second, c.settled)
	node := (leader + 1) % 3 // a follower answers lists from its own state
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		l := getJSON[admin.TxnList](t, c, node, "/v1/txns?state=committed&limit=3&cursor="+cursor)
		if len(l.Txns) > 3 || l.Total != 7 || l.Truncated != (l.NextCursor != "") {
			t.Fatalf("page %d: %d txns, total %d, truncated %v, next %q", pages, len(l.Txns), l.Total, l.Truncated, l.NextCursor)
		}
		got = append(got, txids(t, l)...)
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("committed, paged by 3: %v, want %v in log order", got, want)
	}
	for q, n := range map[string]int{
		"state=all": 8, "state=aborted": 1, "state=committed&shard=s2": 7, "state=all&shard=s9": 0,
		"state=all&since=1h": 8, "state=all&since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339): 0,
		"": 0, "state=preparing": 0, "state=stuck": 0,
	} {
		if l := getJSON[admin.TxnList](t, c, node, "/v1/txns?"+q); l.Total != n || len(l.Txns) != n {
			t.Errorf("/v1/txns?%s: total %d, %d txns; want %d", q, l.Total, len(l.Txns), n)
		}
	}
	for q, field := range map[string]string{"state=done": "state", "since=yesterday": "since", "since=-5m": "since",
		"cursor=garbage": "cursor", "limit=0": "limit", "limit=100001": "limit", "older_than=soon": "older_than"} {
		code, b := c.call(node, "GET", "/v1/txns?"+q, "", "")
		if e := apiError(t, b); code != 400 || e.Code != admin.CodeInvalid || e.Field != field {
			t.Errorf("/v1/txns?%s: %d %s, want 400 INVALID on %s", q, code, b, field)
		}
	}
}

// TestDeadLettersRedriveResolveOnRealCluster: a decision shard s2 never acknowledges
// is a dead letter with the leader's attempts; a redrive sends it again at once; a
// follower's NOT_LEADER names the leader's admin URL; disabling s2 and resolving the
// txn for it finishes the txn on every node; bad input changes nothing.
func TestDeadLettersRedriveResolveOnRealCluster(t *testing.T) {
	c := newAdminCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := c.lc.Propose(ctx, duel("p-done", "alice", "bob"))
	if err != nil || done.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("propose: %v %v", done, err)
	}
	leader := eventually(t, 10*time.Second, c.settled)
	follower := (leader + 1) % 3
	c.dropAcks.Store(true)
	d, err := c.lc.Propose(ctx, duel("p-dl", "carol", "dave"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("propose: %v %v", d, err)
	}
	txid := d.GetTxid()

	dl := func(node int, q string) admin.DeadLetterList {
		t.Helper()
		return getJSON[admin.DeadLetterList](t, c, node, "/v1/deadletters?"+q)
	}
	var first admin.DeadLetter
	eventually(t, 10*time.Second, func() (bool, error) {
		l := dl(leader, "older_than=0s")
		if l.Total != 1 || len(l.DeadLetters) != 1 {
			return false, fmt.Errorf("dead letters %+v", l)
		}
		first = l.DeadLetters[0]
		if first.TxID != txid || first.Shard != "s2" || first.Outcome != "OUTCOME_COMMITTED" || first.Attempts < 1 ||
			first.ShardState != "SHARD_STATE_ACTIVE" || first.DecidedAt.IsZero() || first.AgeSeconds < 0 {
			return false, fmt.Errorf("dead letter %+v", first)
		}
		return true, nil
	})
	if l := dl(leader, "older_than=1h"); l.Total != 0 {
		t.Errorf("older_than=1h lists %+v", l)
	}
	code, b := c.call(follower, "GET", "/v1/deadletters", "", "")
	if e := apiError(t, b); code != 421 || e.Code != admin.CodeNotLeader || e.LeaderAdminURL != c.url(leader) {
		t.Errorf("follower dead letters: %d %s, want 421 naming %s", code, b, c.url(leader))
	}
	eventually(t, 5*time.Second, func() (bool, error) { // the follower may trail the leader
		if l := dl(follower, "stale=true&older_than=0s"); l.Total != 1 || l.DeadLetters[0].Attempts != -1 || l.DeadLetters[0].TxID != txid {
			return false, fmt.Errorf("stale follower dead letters %+v", l)
		}
		return true, nil
	})

	// Redrive: operate role, leader only, decided and unacked only.
	redrive := func(node int, id, tok string) (int, []byte) {
		return c.call(node, "POST", admin.PathFor(admin.PathTxnRedrive, id), tok, "")
	}
	if code, _ := redrive(leader, txid, ""); code != 401 {
		t.Errorf("redrive without a token: %d", code)
	}
	code, b = redrive(follower, txid, token)
	if e := apiError(t, b); code != 421 || e.LeaderAdminURL != c.url(leader) || e.LeaderID != c.lc.NodeID(leader) {
		t.Errorf("redrive on a follower: %d %s", code, b)
	}
	for id, want := range map[string]int{done.GetTxid(): 409, "tx-999999-0": 404} {
		if code, b := redrive(leader, id, token); code != want {
			t.Errorf("redrive %s: %d %s, want %d", id, code, b, want)
		}
	}
	before := dl(leader, "older_than=0s").DeadLetters[0].Attempts
	code, b = redrive(leader, "p-dl", token) // a proposal id names its txn
	rr := decode[admin.RedriveResponse](t, "redrive", code, b)
	if !rr.OK || rr.TxID != txid || !slices.Equal(rr.Shards, []string{"s2"}) {
		t.Errorf("redrive: %+v", rr)
	}
	eventually(t, 5*time.Second, func() (bool, error) {
		if n := dl(leader, "older_than=0s").DeadLetters[0].Attempts; n <= before {
			return false, fmt.Errorf("attempts %d, were %d before the redrive", n, before)
		}
		return true, nil
	})

	// Shard state: bad input changes nothing.
	shardState := func(node int) string {
		l := getJSON[struct {
			Shards []struct {
				ShardID string `json:"shard_id"`
				State   string `json:"state"`
			} `json:"shards"`
		}](t, c, node, "/v1/shards")
		for _, s := range l.Shards {
			if s.ShardID == "s2" {
				return s.State
			}
		}
		return ""
	}
	setState := func(node int, shard, body string) (int, []byte) {
		return c.call(node, "POST", admin.PathFor(admin.PathShardState, shard), token, body)
	}
	resolve := func(shard string) (int, []byte) {
		return c.call(leader, "POST", admin.PathFor(admin.PathTxnResolve, txid), token, `{"shard":"`+shard+`"}`)
	}
	if code, b := resolve("s2"); code != 409 || apiError(t, b).Code != admin.CodeConflict {
		t.Errorf("resolve for an active shard: %d %s", code, b)
	}
	for body, field := range map[string]string{`{"state":"gone"}`: "state", `{}`: "state", `{"state":"active","x":1}`: "body", ``: "body"} {
		if code, b := setState(leader, "s2", body); code != 400 || apiError(t, b).Field != field {
			t.Errorf("shard state %q: %d %s, want 400 on %s", body, code, b, field)
		}
	}
	if code, b := setState(leader, "s9", `{"state":"disabled"}`); code != 404 {
		t.Errorf("unknown shard: %d %s", code, b)
	}
	if code, b := setState(follower, "s2", `{"state":"disabled"}`); code != 421 || apiError(t, b).LeaderAdminURL != c.url(leader) {
		t.Errorf("shard state on a follower: %d %s", code, b)
	}
	if st := shardState(leader); st != "SHARD_STATE_ACTIVE" {
		t.Fatalf("bad input changed s2's state to %s", st)
	}
	code, b = setState(leader, "s2", `{"state":"disabled"}`)
	if r := decode[admin.ShardStateResponse](t, "disable s2", code, b); !r.OK || r.State != "SHARD_STATE_DISABLED" {
		t.Errorf("disable s2: %+v", r)
	}
	for i := range 3 {
		eventually(t, 5*time.Second, func() (bool, error) {
			if st := shardState(i); st != "SHARD_STATE_DISABLED" {
				return false, fmt.Errorf("node %d: s2 is %s", i, st)
			}
			return true, nil
		})
	}
	// A disabled shard's decisions are dead letters whatever their age.
	if l := dl(leader, "older_than=1h"); l.Total != 1 || l.DeadLetters[0].ShardState != "SHARD_STATE_DISABLED" {
		t.Errorf("dead letters of a disabled shard: %+v", l)
	}
	for shard, want := range map[string]int{"s1": 409, "s9": 400, "": 400} {
		if code, b := resolve(shard); code != want {
			t.Errorf("resolve for %q: %d %s, want %d", shard, code, b, want)
		}
	}
	code, b = resolve("s2")
	if r := decode[admin.ResolveResponse](t, "resolve", code, b); !r.OK || r.TxID != txid || r.Shard != "s2" {
		t.Errorf("resolve: %+v", r)
	}
	for i := range 3 {
		eventually(t, 5*time.Second, func() (bool, error) {
			rec, ok := c.lc.Node(i).FSM().Txn(txid)
			if !ok || rec.GetState() != smv1.TxnState_TXN_STATE_DONE {
				return false, fmt.Errorf("node %d: %v", i, rec.GetState())
			}
			return true, nil
		})
	}
	if l := dl(leader, "older_than=0s"); l.Total != 0 {
		t.Errorf("dead letters after resolve: %+v", l)
	}
	eventually(t, 5*time.Second, func() (bool, error) {
		if _, running := c.lc.Node(leader).DeliveryAttempts(txid); running {
			return false, fmt.Errorf("the leader still delivers %s", txid)
		}
		return true, nil
	})
	if code, b := resolve("s2"); code != 409 {
		t.Errorf("second resolve: %d %s", code, b)
	}
}

// TestStatsAndPolicyOnRealCluster: every node counts the decisions it applied.
func TestStatsAndPolicyOnRealCluster(t *testing.T) {
	c := newAdminCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []*smv1.Proposal{duel("p-1", "a", "b"), duel("p-2", "c", "d"), duel("p-3", "a", "e")} {
		if _, err := c.lc.Propose(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, c.settled)
	for i := range 3 {
		eventually(t, 5*time.Second, func() (bool, error) {
			st := getJSON[admin.Stats](t, c, i, admin.PathStats)
			if st.Commits != 2 || st.Aborts["PLAYER_LEASED"] != 1 || len(st.Aborts) < 7 || st.InDoubt["s1"] != 0 || len(st.InDoubt) != 2 {
				return false, fmt.Errorf("node %d stats %+v", i, st)
			}
			return true, nil
		})
		if p := getJSON[admin.PolicyInfo](t, c, i, admin.PathPolicy); p.Revision != "" || p.RecentDenials == nil || len(p.RecentDenials) != 0 {
			t.Errorf("node %d policy (none configured): %+v", i, p)
		}
	}
}
