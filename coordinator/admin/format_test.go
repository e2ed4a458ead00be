package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFormatClusterWarnings(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*Status
		want  []string
	}{
		{"healthy", []*Status{
			{NodeID: "c1", Role: "leader", Leading: true, Ready: true, LeaderID: "c1", Term: 3, CommitIndex: 10, AppliedIndex: 10},
			{NodeID: "c2", Role: "follower", Ready: true, LeaderID: "c1", Term: 3, CommitIndex: 9, AppliedIndex: 7},
		}, []string{"2/2 nodes reachable, 2 ready; leader c1", "c2 follower 3 9 7 3 c1 yes"}},
		// Issue 10's report: only the follower knows how far behind it is.
		{"restarted follower", []*Status{
			{NodeID: "c2", Role: "follower", LeaderID: "c1", Term: 3, CommitIndex: 0, AppliedIndex: 0,
				LeaderCommitIndex: 6587, Lag: 6587, NotReady: "catching up with the leader"},
		}, []string{"c2 follower 3 0 0 6587 c1 no", "c2 not ready: catching up with the leader"}},
		{"no leader", []*Status{
			{NodeID: "c1", Role: "candidate", Term: 5, NotReady: "no leader known"},
			nil,
			{Endpoint: "10.0.0.3:8080", Err: errors.New("connection refused")},
		}, []string{"WARNING: no node knows a leader", "c1 not ready: no leader known", "10.0.0.3:8080 unreachable",
			"1/2 nodes reachable, 0 ready"}},
		{"split", []*Status{
			{NodeID: "c1", Role: "leader", LeaderID: "c1", Term: 3},
			{NodeID: "c2", Role: "leader", Leading: true, LeaderID: "c2", Term: 4},
		}, []string{"disagree on the leader: c1, c2", "several nodes are in the leader state: c1, c2",
			"different terms", "leader (taking over)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			if err := FormatCluster(&b, c.nodes); err != nil {
				t.Fatal(err)
			}
			flat := strings.Join(strings.Fields(b.String()), " ")
			for _, w := range c.want {
				if !strings.Contains(flat, w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestStatusClientErrors(t *testing.T) {
	f := newFixture(t, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/bad/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &Error{Code: CodeUnavailable, Message: "shutting down"})
	})
	mux.HandleFunc("/html/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>proxy error</html>", http.StatusBadGateway)
	})
	mux.HandleFunc("/junk/v1/status", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{")) })
	mux.Handle("/", f.h)
	srv := httptest.NewServer(mux)
	hc := &http.Client{Transport: &http.Transport{}}
	defer func() { srv.Close(); hc.CloseIdleConnections() }()
	sc := &StatusClient{HTTP: hc}
	ctx := context.Background()

	st, err := sc.Fetch(ctx, srv.URL+"/")
	if err != nil || st.NodeID != "c1" || st.Endpoint != srv.URL+"/" {
		t.Fatalf("fetch: %+v %v", st, err)
	}
	var e *Error
	if _, err := sc.Fetch(ctx, srv.URL+"/bad"); !errors.As(err, &e) || e.Code != CodeUnavailable || e.HTTPStatus != 503 {
		t.Fatalf("error answer: %v", err)
	}
	if _, err := sc.Fetch(ctx, srv.URL+"/html"); !errors.As(err, &e) || e.HTTPStatus != 502 || !strings.Contains(e.Message, "proxy error") {
		t.Fatalf("non-JSON error answer: %v", err)
	}
	if _, err := sc.Fetch(ctx, srv.URL+"/junk"); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("junk answer: %v", err)
	}
	if _, err := sc.Fetch(ctx, "http://[::1"); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// FuzzHandler: whatever arrives, the server never panics nor answers 500, and off
// /metrics it answers JSON. (503 and 501 are legitimate answers of the fakes.)
func FuzzHandler(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/txns/tx-5-0?stale=1", ""}, {"POST", "/v1/voters", `{"id":"c9","addr":"x"}`},
		{"POST", "/v1/leader/transfer", `{"id":"c2","addr":"c2:7000"}`}, {"DELETE", "/v1/voters/c3", ""},
		{"POST", "/v1/txns/p-prep/abort", "{}"}, {"PATCH", "/v1/shards", "{}"}, {"GET", "/v1/txns?state=%zz", ""},
		{"GET", "/v1/leases/%2F..%2F", ""}, {"POST", "/v1/voters", "\x00\xff"}, {"GET", "/../../etc/passwd", ""},
	} {
		f.Add(s[0], s[1], s[2], true)
	}
	f.Fuzz(func(t *testing.T, method, target, body string, auth bool) {
		fx := newFixture(t, nil)
		req, err := http.NewRequest(method, "http://admin"+target, strings.NewReader(body))
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			return
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != 503 && rec.Code != 501 {
			t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body)
		}
		redirect := rec.Code/100 == 3
		if req.URL.Path != "/metrics" && !redirect && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: content type %q", method, target, rec.Header().Get("Content-Type"))
		}
	})
}
