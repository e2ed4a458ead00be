package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
)

const readTok = "r3ad-token"

// fakePub is an AuditPublisher that keeps what it was given; block, if set, holds
// every Publish until it is closed.
type fakePub struct {
	mu    sync.Mutex
	subj  []string
	data  [][]byte
	block chan struct{}
}

func (p *fakePub) Publish(subject string, data []byte) error {
	if p.block != nil {
		<-p.block
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subj, p.data = append(p.subj, subject), append(p.data, append([]byte(nil), data...))
	return nil
}

func (p *fakePub) records() []AuditRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AuditRecord
	for _, d := range p.data {
		var r AuditRecord
		if err := json.Unmarshal(d, &r); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// strictAborter force-aborts only transactions the fake state holds, like the node.
type strictAborter struct{ *abortingNode }

func (n *strictAborter) ForceAbort(ctx context.Context, txid string) error {
	if _, ok := n.st.Txn(txid); !ok {
		return coordinator.ErrNotFound
	}
	return n.abortingNode.ForceAbort(ctx, txid)
}

// secFixture is a fixture with both roles' tokens, the fault endpoints, a
// force-aborting node and an audit trail to a file and a fake publisher.
type secFixture struct {
	*fixture
	an    *abortingNode
	skew  *clock.Skewed
	tr    *fakeTransport
	pub   *fakePub
	audit *Auditor
	file  string
}

func newSecFixture(t *testing.T, mutate func(*Config)) *secFixture {
	t.Helper()
	sf := &secFixture{skew: clock.NewSkewed(clock.NewReal()), tr: &fakeTransport{}, pub: &fakePub{},
		file: filepath.Join(t.TempDir(), "audit.log")}
	var err error
	if sf.audit, err = NewAuditor(AuditConfig{File: sf.file, Publisher: sf.pub, Subject: "sm.v1.events.audit"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sf.audit.Close() })
	sf.fixture = newFixture(t, func(c *Config, n *fakeNode) Node {
		c.ReadToken, c.Audit = readTok, sf.audit
		c.Faults = &FaultConfig{Clock: sf.skew, Transport: sf.tr}
		if mutate != nil {
			mutate(c)
		}
		sf.an = &abortingNode{fakeNode: n}
		return &strictAborter{sf.an}
	})
	return sf
}

// state is everything an admin call could change, to compare before and after.
func (sf *secFixture) state() string {
	sf.r.mu.Lock()
	defer sf.r.mu.Unlock()
	sf.an.mu.Lock()
	defer sf.an.mu.Unlock()
	off, rate := sf.skew.Skew()
	d, r := sf.tr.Percent()
	return fmt.Sprint(sf.r.transfers, sf.r.adds, sf.r.removals, sf.an.aborted, off.Round(time.Minute), rate, d, r)
}

// fileRecords reads the audit log.
func (sf *secFixture) fileRecords(t *testing.T) []AuditRecord {
	t.Helper()
	recs, err := sf.audit.Recent(maxAuditLimit)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

type endpoint struct {
	method, path, body string
	role               Role
	ok                 int  // status when allowed
	mutates            bool // an allowed call changes state()
}

// endpoints is every admin endpoint, the role it needs and what it answers when
// allowed on a secFixture.
var endpoints = []endpoint{
	{"GET", "/healthz", "", RoleNone, 200, false},
	{"GET", "/readyz", "", RoleNone, 200, false},
	{"GET", "/metrics", "", RoleNone, 200, false},
	{"GET", "/v1/status", "", RoleRead, 200, false},
	{"GET", "/v1/txns", "", RoleRead, 200, false},
	{"GET", "/v1/txns/tx-5-0", "", RoleRead, 200, false},
	{"GET", "/v1/leases/alice", "", RoleRead, 200, false},
	{"GET", "/v1/shards", "", RoleRead, 200, false},
	{"GET", PathDebugState, "", RoleRead, 501, false}, // the fake node has no state dump
	{"GET", "/v1/audit", "", RoleRead, 200, false},
	{"GET", PathFault, "", RoleRead, 200, false},
	{"POST", "/v1/txns/tx-5-0/abort", "", RoleOperate, 200, true},
	{"POST", "/v1/leader/transfer", `{"id":"c2","addr":"c2:7000"}`, RoleOperate, 200, true},
	{"POST", "/v1/voters", `{"id":"c4","addr":"c4:7000"}`, RoleOperate, 200, true},
	{"DELETE", "/v1/voters/c3", "", RoleOperate, 200, true},
	{"GET", "/v1/snapshot", "", RoleOperate, 501, false}, // the fake node takes no snapshots
	{"POST", PathSnapshotRestore, "not a snapshot", RoleOperate, 501, false},
	{"POST", PathFaultClock, `{"offset":"1h"}`, RoleOperate, 200, true},
	{"POST", PathFaultTransport, `{"duplicate_percent":5}`, RoleOperate, 200, true},
}

// TestRolesMatrix: every endpoint × {no token, read, operate, bad token} answers as
// its role says: no or a bad credential 401, the read token on an operate endpoint
// 403, and a refused call changes nothing. Allowed operator actions do change the
// state, so the "nothing changed" check can fail.
func TestRolesMatrix(t *testing.T) {
	creds := []struct {
		name, token string
		role        Role
		bad         bool
	}{{"none", "", RoleNone, false}, {"read", readTok, RoleRead, false}, {"operate", testToken, RoleOperate, false},
		{"bad", "not-a-token", RoleNone, true}}
	for _, ep := range endpoints {
		for _, c := range creds {
			sf := newSecFixture(t, nil)
			before := sf.state()
			rec := sf.do(ep.method, ep.path, c.token, ep.body)
			want := ep.ok
			switch {
			case ep.role == RoleNone:
			case c.bad || c.role == RoleNone:
				want = 401
			case c.role < ep.role:
				want = 403
			}
			name := fmt.Sprintf("%s %s with %s", ep.method, ep.path, c.name)
			if rec.Code != want {
				t.Errorf("%s: %d, want %d (%s)", name, rec.Code, want, rec.Body)
				continue
			}
			changed := sf.state() != before
			if want >= 400 {
				if e := errorOf(t, rec.Body.Bytes()); (want == 401 && e.Code != CodeUnauthenticated) || (want == 403 && e.Code != CodeForbidden) {
					t.Errorf("%s: code %s", name, e.Code)
				}
				if changed {
					t.Errorf("%s: refused, but the state changed: %s -> %s", name, before, sf.state())
				}
			} else if changed != ep.mutates {
				t.Errorf("%s: state changed %v, want %v", name, changed, ep.mutates)
			}
		}
	}
}

// Without a read token the reads stay open, as before roles existed; operator
// actions still need the operate token.
func TestReadsOpenWithoutReadToken(t *testing.T) {
	sf := newSecFixture(t, func(c *Config) { c.ReadToken = "" })
	for _, ep := range endpoints {
		rec := sf.do(ep.method, ep.path, "", ep.body)
		if ep.role <= RoleRead && rec.Code != ep.ok {
			t.Errorf("%s %s without a token: %d, want %d", ep.method, ep.path, rec.Code, ep.ok)
		}
		if ep.role == RoleOperate && rec.Code != 401 {
			t.Errorf("%s %s without a token: %d, want 401", ep.method, ep.path, rec.Code)
		}
	}
	// A token list: either token of the comma-separated list is the operate role.
	sf = newSecFixture(t, func(c *Config) { c.AuthToken = "old-token, new-token" })
	for _, tok := range []string{"old-token", "new-token"} {
		if rec := sf.do("POST", "/v1/voters", tok, `{"id":"c4","addr":"c4:7000"}`); rec.Code != 200 {
			t.Errorf("operate token %q of a list: %d %s", tok, rec.Code, rec.Body)
		}
	}
	if rec := sf.do("POST", "/v1/voters", "old-token,new-token", `{"id":"c4","addr":"c4:7000"}`); rec.Code != 401 {
		t.Errorf("the list itself as a token: %d", rec.Code)
	}
}

// TestAuditTrail: an allowed action, a wrong-role attempt and an unauthenticated one
// are each one JSON line in the file (0600) and one published event, with who, what,
// when and the result; reads are not audited.
func TestAuditTrail(t *testing.T) {
	sf := newSecFixture(t, nil)
	start := time.Now().UTC()
	sf.do("GET", "/v1/status", readTok, "")
	sf.do("POST", "/v1/voters", testToken, `{"id":"c4","addr":"c4:7000"}`)
	sf.do("POST", "/v1/leader/transfer", readTok, `{"id":"c2","addr":"c2:7000"}`)
	sf.do("DELETE", "/v1/voters/c3", "", "")
	sf.do("POST", "/v1/txns/tx-404/abort", testToken, "")
	recs := sf.fileRecords(t)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4 (reads are not audited): %+v", len(recs), recs)
	}
	want := []AuditRecord{
		{Role: "operate", Identity: TokenIdentity(RoleOperate, testToken), Method: "POST", Path: "/v1/voters",
			Body: `{"id":"c4","addr":"c4:7000"}`, Status: 200, OK: true},
		{Role: "read", Identity: TokenIdentity(RoleRead, readTok), Method: "POST", Path: "/v1/leader/transfer",
			Body: "(not read: 28 bytes)", Status: 403, Code: CodeForbidden},
		{Role: "none", Identity: "anonymous", Method: "DELETE", Path: "/v1/voters/c3", Status: 401, Code: CodeUnauthenticated},
		{Role: "operate", Identity: TokenIdentity(RoleOperate, testToken), Method: "POST", Path: "/v1/txns/tx-404/abort",
			Status: 404, Code: CodeNotFound},
	}
	for i, w := range want {
		g := recs[i]
		if g.Role != w.Role || g.Identity != w.Identity || g.Method != w.Method || g.Path != w.Path || g.Body != w.Body ||
			g.Status != w.Status || g.OK != w.OK || g.Code != w.Code || g.Node != "c1" || g.Remote == "" ||
			g.Time.Before(start.Add(-time.Second)) || g.Time.Location() != time.UTC {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if strings.Contains(readFile(t, sf.file), testToken) || strings.Contains(readFile(t, sf.file), readTok) {
		t.Error("the audit log holds a token in clear")
	}
	if fi, err := os.Stat(sf.file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode: %v %v", fi.Mode(), err)
	}
	// Published too (asynchronously): the same records on the audit subject.
	deadline := time.Now().Add(5 * time.Second)
	for len(sf.pub.records()) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := sf.pub.records(); len(got) != 4 || got[1].Code != CodeForbidden || sf.pub.subj[0] != "sm.v1.events.audit" {
		t.Fatalf("published %+v on %v", got, sf.pub.subj)
	}
	// GET /v1/audit serves them to the read role.
	rec := sf.do("GET", "/v1/audit?limit=2", readTok, "")
	var out struct{ Records []AuditRecord }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Records) != 2 || out.Records[1].Path != "/v1/txns/tx-404/abort" {
		t.Fatalf("GET /v1/audit: %d %s", rec.Code, rec.Body)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A publisher that hangs never holds up an operator's call: records queue, then are
// dropped and counted.
func TestAuditPublishNeverBlocks(t *testing.T) {
	pub := &fakePub{block: make(chan struct{})}
	a, err := NewAuditor(AuditConfig{Publisher: pub, Subject: "x", Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config, n *fakeNode) Node { c.Audit = a; return n })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			f.do("POST", "/v1/voters", testToken, `{"id":"c4","addr":"c4:7000"}`)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("operator calls blocked on a hung publisher")
	}
	if st := a.Stats(); st.Records != 10 || st.PublishDropped == 0 {
		t.Fatalf("stats %+v", st)
	}
	close(pub.block)
	_ = a.Close()
}

// TestBodyLimit: a body over MaxBodyBytes is 413 TOO_LARGE and changes nothing; the
// same body under the default limit goes through (the negative control).
func TestBodyLimit(t *testing.T) {
	body := `{"id":"c4","addr":"c4:7000"}` + strings.Repeat(" ", 8<<10)
	sf := newSecFixture(t, func(c *Config) { c.MaxBodyBytes = 4 << 10 })
	before := sf.state()
	rec := sf.do("POST", "/v1/voters", testToken, body)
	if e := errorOf(t, rec.Body.Bytes()); rec.Code != 413 || e.Code != CodeTooLarge {
		t.Fatalf("oversized: %d %+v", rec.Code, e)
	}
	if sf.state() != before {
		t.Fatal("an oversized call changed the state")
	}
	if recs := sf.fileRecords(t); len(recs) != 1 || recs[0].Status != 413 || recs[0].Code != CodeTooLarge {
		t.Fatalf("audit of the oversized call: %+v", recs)
	}
	sf = newSecFixture(t, nil)
	if rec := sf.do("POST", "/v1/voters", testToken, body); rec.Code != 200 || sf.state() == before {
		t.Fatalf("the same body under the default limit: %d %s", rec.Code, rec.Body)
	}
}

// TestBadInputEveryEndpoint: malformed JSON, wrong types, unknown fields, oversized
// bodies, wrong methods, missing, bad and wrong-role tokens and unknown ids, over every
// endpoint: each answers its typed JSON error and changes nothing.
func TestBadInputEveryEndpoint(t *testing.T) {
	big := strings.Repeat(" ", 8<<10)
	type row struct {
		method, path, token, body string
		status                    int
		code                      string
	}
	var rows []row
	for _, p := range []string{"/v1/voters", "/v1/leader/transfer", PathFaultClock, PathFaultTransport} {
		rows = append(rows,
			row{"POST", p, testToken, "{", 400, CodeInvalid},
			row{"POST", p, testToken, `{"zz":1}`, 400, CodeInvalid},
			row{"POST", p, testToken, `[1]`, 400, CodeInvalid},
			row{"PUT", p, testToken, `{}`, 405, CodeMethodNotAllowed},
		)
	}
	rows = append(rows,
		row{"POST", "/v1/voters", testToken, `{"id":4,"addr":"x"}`, 400, CodeInvalid},
		row{"POST", "/v1/leader/transfer", testToken, `{"id":"c2","addr":7}`, 400, CodeInvalid},
		row{"POST", PathFaultClock, testToken, `{"offset":5}`, 400, CodeInvalid},
		row{"POST", PathFaultClock, testToken, `{"offset":"soon"}`, 400, CodeInvalid},
		row{"POST", PathFaultTransport, testToken, `{"duplicate_percent":"x"}`, 400, CodeInvalid},
		row{"POST", PathFaultTransport, testToken, `{"duplicate_percent":500}`, 400, CodeInvalid},
		row{"POST", "/v1/txns/tx-404/abort", testToken, "", 404, CodeNotFound},
		row{"GET", "/v1/txns/tx-404", readTok, "", 404, CodeNotFound},
		row{"GET", "/v1/leases/nobody", readTok, "", 404, CodeNotFound},
		row{"DELETE", "/v1/voters/c9", testToken, "", 404, CodeNotFound},
		row{"GET", "/v1/txns?limit=x", readTok, "", 400, CodeInvalid},
		row{"GET", "/v1/audit?limit=0", readTok, "", 400, CodeInvalid},
		row{"GET", "/v1/snapshot?stale=maybe", testToken, "", 501, CodeNotImplemented},
		row{"POST", "/v1/txns/tx-5-0/abort", "Basic abc", "", 401, CodeUnauthenticated},
	)
	for _, ep := range endpoints {
		if ep.role == RoleNone {
			continue
		}
		tok := testToken
		rows = append(rows, row{"PATCH", ep.path, tok, "", 405, CodeMethodNotAllowed},
			row{ep.method, ep.path, "", ep.body, 401, CodeUnauthenticated},
			row{ep.method, ep.path, "wrong", ep.body, 401, CodeUnauthenticated})
		if ep.path != PathSnapshotRestore { // the node bounds the snapshot upload itself
			rows = append(rows, row{ep.method, ep.path, tok, ep.body + big, 413, CodeTooLarge})
		}
		if ep.role == RoleOperate {
			rows = append(rows, row{ep.method, ep.path, readTok, ep.body, 403, CodeForbidden})
		}
	}
	for _, r := range rows {
		sf := newSecFixture(t, func(c *Config) { c.MaxBodyBytes = 4 << 10 })
		before := sf.state()
		var rec *httptest.ResponseRecorder
		if strings.HasPrefix(r.token, "Basic ") {
			hreq := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
			hreq.Header.Set("Authorization", r.token)
			rec = httptest.NewRecorder()
			sf.h.ServeHTTP(rec, hreq)
		} else {
			rec = sf.do(r.method, r.path, r.token, r.body)
		}
		name := fmt.Sprintf("%s %s token=%q body=%.20q", r.method, r.path, r.token, r.body)
		if rec.Code != r.status {
			t.Errorf("%s: %d, want %d (%s)", name, rec.Code, r.status, rec.Body)
			continue
		}
		if e := errorOf(t, rec.Body.Bytes()); e.Code != r.code {
			t.Errorf("%s: code %s, want %s", name, e.Code, r.code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", name, ct)
		}
		if after := sf.state(); after != before {
			t.Errorf("%s: state changed: %s -> %s", name, before, after)
		}
	}
}
