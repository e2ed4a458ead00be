package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/coordinator"
)

// errorOf decodes an error response.
func errorOf(t *testing.T, body []byte) *Error {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("not an error body: %q (%v)", body, err)
	}
	return eb.Error
}

func TestReadyz(t *testing.T) {
	cases := []struct {
		name   string
		set    func(*fakeRaft)
		status int
		reason string
	}{
		{"caught up", func(*fakeRaft) {}, 200, ""},
		{"within lag", func(r *fakeRaft) { r.commit, r.applied = 30, 25 }, 200, ""},
		{"no leader", func(r *fakeRaft) { r.state, r.leaderID, r.leaderAddr = raft.Candidate, "", "" }, 503, "no leader known"},
		{"behind", func(r *fakeRaft) { r.state, r.commit, r.applied = raft.Follower, 500, 100 }, 503, "catching up"},
		{"shut down", func(r *fakeRaft) { r.state = raft.Shutdown }, 503, "shut down"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config, n *fakeNode) Node { cfg.MaxApplyLag = 10; return n })
			c.set(f.r)
			rec := f.do("GET", "/readyz", "", "")
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			var rd readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
				t.Fatal(err)
			}
			if rd.Ready != (c.status == 200) || !strings.Contains(rd.Reason, c.reason) {
				t.Fatalf("readiness %+v, want reason containing %q", rd, c.reason)
			}
			if c.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// TestReadyzAgainstTheLeader: with a LeaderIndexSource a follower is measured against
// the leader's commit index, not its own; the leader is ready once it has taken over.
func TestReadyzAgainstTheLeader(t *testing.T) {
	follower := func(r *fakeRaft) { r.state, r.leaderID, r.commit, r.applied = raft.Follower, "c2", 0, 0 }
	cases := []struct {
		name    string
		set     func(*fakeRaft, *fakeNode)
		li      LeaderIndex
		err     error
		status  int
		reason  string
		lag     uint64
		leaderC uint64
	}{
		// The bug: own commit 0, applied 0, the leader 6587 ahead.
		{"restarted follower behind", func(r *fakeRaft, _ *fakeNode) { follower(r) }, LeaderIndex{NodeID: "c2", CommitIndex: 6587},
			nil, 503, "catching up with the leader: applied 0 of 6587", 6587, 6587},
		{"follower within lag", func(r *fakeRaft, _ *fakeNode) { follower(r); r.commit, r.applied = 100, 95 },
			LeaderIndex{NodeID: "c2", CommitIndex: 105}, nil, 200, "", 10, 105},
		{"own commit above a stale answer", func(r *fakeRaft, _ *fakeNode) { follower(r); r.commit, r.applied = 200, 100 },
			LeaderIndex{NodeID: "c2", CommitIndex: 105}, nil, 503, "lag 100", 100, 105},
		{"leader index unknown", func(r *fakeRaft, _ *fakeNode) { follower(r) }, LeaderIndex{}, errBoom, 503, "unknown: boom", 0, 0},
		{"answered by another node", func(r *fakeRaft, _ *fakeNode) { follower(r) }, LeaderIndex{NodeID: "c3", CommitIndex: 5},
			nil, 503, `from "c3", but this node follows "c2"`, 0, 0},
		{"leader taking over", func(r *fakeRaft, n *fakeNode) { n.leader = false }, LeaderIndex{}, errBoom, 503, "taking over", 0, 20},
		{"leader", func(r *fakeRaft, n *fakeNode) { r.applied = 10 }, LeaderIndex{}, errBoom, 200, "", 10, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config, n *fakeNode) Node {
				cfg.MaxApplyLag = 10
				cfg.LeaderIndex = LeaderIndexFunc(func(context.Context) (LeaderIndex, error) { return c.li, c.err })
				return n
			})
			c.set(f.r, f.node)
			rec := f.do("GET", "/readyz", "", "")
			var rd readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
				t.Fatal(err)
			}
			if rec.Code != c.status || rd.Ready != (c.status == 200) || !strings.Contains(rd.Reason, c.reason) ||
				rd.Lag != c.lag || rd.LeaderCommitIndex != c.leaderC {
				t.Fatalf("%d %+v; want %d, reason %q, lag %d, leader commit %d", rec.Code, rd, c.status, c.reason, c.lag, c.leaderC)
			}
			var st Status
			if err := json.Unmarshal(f.do("GET", "/v1/status", "", "").Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			if st.Ready != rd.Ready || st.NotReady != rd.Reason || st.Lag != rd.Lag || st.LeaderCommitIndex != rd.LeaderCommitIndex {
				t.Fatalf("/v1/status %+v disagrees with /readyz %+v", st, rd)
			}
		})
	}
}

func TestHealthzAndStatus(t *testing.T) {
	f := newFixture(t, func(_ *Config, n *fakeNode) Node { return &abortingNode{fakeNode: n} })
	if rec := f.do("GET", "/healthz", "", ""); rec.Code != 200 {
		t.Fatalf("healthz %d", rec.Code)
	}
	rec := f.do("GET", "/v1/status", "", "")
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "c1" || st.Role != "leader" || !st.Leading || st.LeaderID != "c1" || st.LeaderAddr != "c1:7000" ||
		st.Term != 4 || st.CommitIndex != 20 || st.FSMAppliedIndex != 7 || !st.Ready {
		t.Fatalf("status %+v", st)
	}
	if st.Counts != (Counts{Txns: 3, Preparing: 1, Undelivered: 1, Leases: 1, Shards: 2}) {
		t.Fatalf("counts %+v", st.Counts)
	}
	if len(st.Peers) != 3 || !st.Peers[0].Leader || !st.Peers[0].Self || st.Peers[2].Suffrage != "nonvoter" {
		t.Fatalf("peers %+v", st.Peers)
	}
	if st.Driver == nil || st.Driver.Started != 3 {
		t.Fatalf("driver stats %+v", st.Driver)
	}
}

func TestTxnReadsOnFakes(t *testing.T) {
	f := newFixture(t, nil)
	for _, id := range []string{"tx-5-0", "p-prep"} {
		rec := f.do("GET", "/v1/txns/"+id, "", "")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"txid":"tx-5-0"`) ||
			!strings.Contains(rec.Body.String(), `"state":"TXN_STATE_PREPARING"`) {
			t.Fatalf("GET %s: %d %s", id, rec.Code, rec.Body)
		}
		if got := rec.Header().Get(HeaderRead); got != "linearizable" {
			t.Errorf("read header %q", got)
		}
	}
	if rec := f.do("GET", "/v1/txns/nope", "", ""); rec.Code != 404 || errorOf(t, rec.Body.Bytes()).Code != CodeNotFound {
		t.Fatalf("unknown txn: %d %s", rec.Code, rec.Body)
	}
	// A follower: NOT_LEADER with the hint, 421; stale reads still work.
	f.r.mu.Lock()
	f.r.state, f.r.leaderID, f.r.leaderAddr = raft.Follower, "c2", "c2:7000"
	f.r.mu.Unlock()
	rec := f.do("GET", "/v1/txns/tx-5-0", "", "")
	if e := errorOf(t, rec.Body.Bytes()); rec.Code != http.StatusMisdirectedRequest || e.Code != CodeNotLeader ||
		e.LeaderID != "c2" || e.LeaderAddr != "c2:7000" {
		t.Fatalf("follower read: %d %+v", rec.Code, e)
	}
	if rec := f.do("GET", "/v1/txns/p-prep?stale=true", "", ""); rec.Code != 200 || rec.Header().Get(HeaderRead) != "stale" {
		t.Fatalf("stale read: %d %s", rec.Code, rec.Body)
	}
	// No leader at all: NOT_LEADER as 503.
	f.r.mu.Lock()
	f.r.leaderID, f.r.leaderAddr = "", ""
	f.r.mu.Unlock()
	if rec := f.do("GET", "/v1/txns/tx-5-0", "", ""); rec.Code != 503 || errorOf(t, rec.Body.Bytes()).Code != CodeNotLeader {
		t.Fatalf("leaderless read: %d %s", rec.Code, rec.Body)
	}
}

func TestListingsOnFakes(t *testing.T) {
	f := newFixture(t, nil)
	count := func(target string) (int, TxnList) {
		rec := f.do("GET", target, "", "")
		var l TxnList
		if rec.Code == 200 {
			if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code, l
	}
	for target, want := range map[string]int{"/v1/txns": 2, "/v1/txns?state=preparing": 1, "/v1/txns?state=undelivered": 1} {
		if code, l := count(target); code != 200 || len(l.Txns) != want || l.Total != want {
			t.Errorf("%s: %d %+v, want %d txns", target, code, l, want)
		}
	}
	if code, l := count("/v1/txns?limit=1"); code != 200 || len(l.Txns) != 1 || l.Total != 2 || !l.Truncated {
		t.Errorf("limit: %d %+v", code, l)
	}
	for _, bad := range []string{"/v1/txns?state=done", "/v1/txns?limit=0", "/v1/txns?limit=x", "/v1/txns/tx-5-0?stale=maybe"} {
		if rec := f.do("GET", bad, "", ""); rec.Code != 400 || errorOf(t, rec.Body.Bytes()).Code != CodeInvalid {
			t.Errorf("%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
	rec := f.do("GET", "/v1/leases/alice", "", "")
	want := fmt.Sprintf(`{"player_id":"alice","txid":"tx-6-0","token":"%d","state":"LEASE_STATE_ACTIVE","ttl_ms":"60000","renew_seq":"2"}`, 6<<16)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("lease: %d %s, want %s", rec.Code, rec.Body, want)
	}
	if rec := f.do("GET", "/v1/leases/bob", "", ""); rec.Code != 404 {
		t.Fatalf("no lease: %d", rec.Code)
	}
	rec = f.do("GET", "/v1/shards", "", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"shard_id":"s2"`) || !strings.Contains(rec.Body.String(), "SHARD_STATE_DRAINING") {
		t.Fatalf("shards: %d %s", rec.Code, rec.Body)
	}
}

func TestAuth(t *testing.T) {
	t.Run("token configured", func(t *testing.T) {
		f := newFixture(t, nil)
		if rec := f.do("POST", "/v1/leader/transfer", "", ""); rec.Code != 401 ||
			errorOf(t, rec.Body.Bytes()).Code != CodeUnauthenticated || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("no token: %d %s", rec.Code, rec.Body)
		}
		if rec := f.do("POST", "/v1/leader/transfer", "wrong", ""); rec.Code != 401 {
			t.Fatalf("wrong token: %d %s", rec.Code, rec.Body)
		}
		req := f.do("POST", "/v1/leader/transfer", testToken, "")
		if req.Code != 200 || len(f.r.transfers) != 1 {
			t.Fatalf("good token: %d %s", req.Code, req.Body)
		}
	})
	t.Run("no token configured", func(t *testing.T) {
		f := newFixture(t, func(c *Config, n *fakeNode) Node { c.AuthToken = ""; return n })
		rec := f.do("DELETE", "/v1/voters/c3", "anything", "")
		if e := errorOf(t, rec.Body.Bytes()); rec.Code != 403 || e.Code != CodeForbidden || !strings.Contains(e.Message, "no admin token") {
			t.Fatalf("disabled: %d %+v", rec.Code, e)
		}
		if len(f.r.removals) != 0 {
			t.Fatal("a refused call reached raft")
		}
	})
	t.Run("dev mode", func(t *testing.T) {
		f := newFixture(t, func(c *Config, n *fakeNode) Node { c.AuthToken, c.AllowUnauthenticated = "", true; return n })
		if rec := f.do("DELETE", "/v1/voters/c3", "", ""); rec.Code != 200 || len(f.r.removals) != 1 {
			t.Fatalf("dev: %d %s", rec.Code, rec.Body)
		}
	})
}

func TestOperatorActionsOnFakes(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do("POST", "/v1/voters", testToken, `{"id":"c4","addr":"c4:7000"}`); rec.Code != 200 ||
		!strings.Contains(rec.Body.String(), `"index":42`) || f.r.adds[0] != "c4@c4:7000" {
		t.Fatalf("add voter: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("DELETE", "/v1/voters/c9", testToken, ""); rec.Code != 404 {
		t.Fatalf("remove unknown: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("POST", "/v1/leader/transfer", testToken, `{"id":"c2","addr":"c2:7000"}`); rec.Code != 200 || f.r.transfers[0] != "c2" {
		t.Fatalf("targeted transfer: %d %s %v", rec.Code, rec.Body, f.r.transfers)
	}
	// Raft's errors map onto the API's codes.
	for err, want := range map[error]int{
		raft.ErrLeadershipLost:               504,
		raft.ErrLeadershipTransferInProgress: 409,
		raft.ErrRaftShutdown:                 503,
		errBoom:                              503,
	} {
		f.r.mu.Lock()
		f.r.err = err
		f.r.mu.Unlock()
		if rec := f.do("POST", "/v1/voters", testToken, `{"id":"c4","addr":"c4:7000"}`); rec.Code != want {
			t.Errorf("%v: %d, want %d (%s)", err, rec.Code, want, rec.Body)
		}
	}
	f.r.mu.Lock()
	f.r.err, f.r.state, f.r.leaderID = nil, raft.Follower, "c2"
	f.r.mu.Unlock()
	for _, c := range [][3]string{{"POST", "/v1/voters", `{"id":"c4","addr":"x"}`}, {"DELETE", "/v1/voters/c3", ""},
		{"POST", "/v1/leader/transfer", ""}} {
		rec := f.do(c[0], c[1], testToken, c[2])
		if e := errorOf(t, rec.Body.Bytes()); rec.Code != 421 || e.LeaderID != "c2" {
			t.Errorf("%s %s on a follower: %d %+v", c[0], c[1], rec.Code, e)
		}
	}
}

func TestForceAbort(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do("POST", "/v1/txns/tx-5-0/abort", testToken, ""); rec.Code != 501 || errorOf(t, rec.Body.Bytes()).Code != CodeNotImplemented {
		t.Fatalf("without ForceAbort: %d %s", rec.Code, rec.Body)
	}
	var an *abortingNode
	f = newFixture(t, func(_ *Config, n *fakeNode) Node { an = &abortingNode{fakeNode: n}; return an })
	if rec := f.do("POST", "/v1/txns/p-prep/abort", testToken, ""); rec.Code != 200 || an.aborted[0] != "tx-5-0" {
		t.Fatalf("abort by proposal id: %d %s %v", rec.Code, rec.Body, an.aborted)
	}
	for err, want := range map[error]int{
		fmt.Errorf("%w: tx-6-0 is COMMITTED", coordinator.ErrConflict): 409,
		coordinator.ErrNotFound:                          404,
		&coordinator.NotLeaderError{LeaderID: "c3"}:      421,
		&coordinator.UnknownOutcomeError{TxID: "tx-5-0"}: 504,
	} {
		an.mu.Lock()
		an.err = err
		an.mu.Unlock()
		rec := f.do("POST", "/v1/txns/tx-5-0/abort", testToken, "")
		if rec.Code != want {
			t.Errorf("%v: %d, want %d", err, rec.Code, want)
		}
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		method, target, body string
		status               int
		code, msg            string
	}{
		{"GET", "/nope", "", 404, CodeNotFound, "no endpoint"},
		{"GET", "/v1/txns/a/b/c", "", 404, CodeNotFound, ""},
		{"GET", "/v1/txns/", "", 404, CodeNotFound, ""},
		{"GET", "/v1/leases/", "", 404, CodeNotFound, ""},
		{"DELETE", "/v1/voters/", "", 404, CodeNotFound, ""},
		{"POST", "/v1/status", "", 405, CodeMethodNotAllowed, "GET"},
		{"PUT", "/v1/voters", "", 405, CodeMethodNotAllowed, "POST"},
		{"GET", "/v1/voters", "", 405, CodeMethodNotAllowed, ""},
		{"DELETE", "/healthz", "", 405, CodeMethodNotAllowed, ""},
		{"POST", "/v1/voters", "", 400, CodeInvalid, "empty"},
		{"POST", "/v1/voters", "{", 400, CodeInvalid, "malformed JSON"},
		{"POST", "/v1/voters", `{"id":"c4","addr":"x"} {}`, 400, CodeInvalid, "after the object"},
		{"POST", "/v1/voters", `{"id":"c4","adr":"x"}`, 400, CodeInvalid, "unknown field"},
		{"POST", "/v1/voters", `{"id":4}`, 400, CodeInvalid, "malformed JSON"},
		{"POST", "/v1/voters", `[]`, 400, CodeInvalid, "malformed JSON"},
		{"POST", "/v1/voters", `{"id":"c4"}`, 400, CodeInvalid, "addr"},
		{"POST", "/v1/voters", `{"addr":"x"}`, 400, CodeInvalid, "id"},
		{"POST", "/v1/voters", `{"id":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`, 413, CodeTooLarge, "exceeds"},
		{"POST", "/v1/leader/transfer", `{"id":"c2"}`, 400, CodeInvalid, "both"},
		{"POST", "/v1/leader/transfer", `nul`, 400, CodeInvalid, "malformed"},
		{"POST", "/v1/leader/transfer", `{"id":"c1","addr":"c1:7000"}`, 400, CodeInvalid, "this node"},
	}
	for _, c := range cases {
		rec := f.do(c.method, c.target, testToken, c.body)
		if rec.Code != c.status {
			t.Errorf("%s %s %.20q: %d, want %d (%s)", c.method, c.target, c.body, rec.Code, c.status, rec.Body)
			continue
		}
		e := errorOf(t, rec.Body.Bytes())
		if e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s %s %.20q: %+v, want %s containing %q", c.method, c.target, c.body, e, c.code, c.msg)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", c.method, c.target, ct)
		}
	}
	if len(f.r.adds)+len(f.r.transfers) != 0 {
		t.Fatalf("bad requests reached raft: %v %v", f.r.adds, f.r.transfers)
	}
}

// A panicking dependency yields a 500, not a dropped connection.
func TestPanicBecomes500(t *testing.T) {
	f := newFixture(t, nil)
	f.st.panics = true
	rec := f.do("GET", "/v1/shards", "", "")
	if rec.Code != 500 || errorOf(t, rec.Body.Bytes()).Code != CodeInternal {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body)
	}
}
