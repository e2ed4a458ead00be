package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// fakeTransport is a TransportFaults that keeps its shares.
type fakeTransport struct {
	mu           sync.Mutex
	dup, reorder float64
}

func (f *fakeTransport) SetPercent(d, r float64) error {
	if d < 0 || d > 100 || r < 0 || r > 100 {
		return errors.New("out of range")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dup, f.reorder = d, r
	return nil
}

func (f *fakeTransport) Percent() (float64, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dup, f.reorder
}

func faultState(t *testing.T, rec *httptest.ResponseRecorder) FaultState {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var st FaultState
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestFaultEndpointsOffByDefault(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct{ method, path, body string }{
		{"GET", PathFault, ""}, {"POST", PathFaultClock, `{"offset":"1h"}`}, {"POST", PathFaultTransport, `{"duplicate_percent":5}`},
	} {
		rec := f.do(c.method, c.path, testToken, c.body)
		if rec.Code != http.StatusNotFound || errorOf(t, rec.Body.Bytes()).Code != CodeNotFound {
			t.Errorf("%s %s without fault injection: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
}

// The endpoints change the process clock that the node's other components read: the
// status uptime (from the same clock) runs at the injected rate.
func TestFaultClockAndTransport(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	skewed := clock.NewSkewed(fake)
	tr := &fakeTransport{}
	f := newFixture(t, func(cfg *Config, n *fakeNode) Node {
		cfg.AuthToken = "" // no token configured: fault injection is open
		cfg.Clock = skewed
		cfg.Faults = &FaultConfig{Clock: skewed, Transport: tr}
		return n
	})
	st := faultState(t, f.do("GET", PathFault, "", ""))
	if st.Clock.Offset != "0s" || st.Clock.Rate != 1 || st.Transport != (TransportFault{}) {
		t.Fatalf("initial state %+v", st)
	}
	st = faultState(t, f.do("POST", PathFaultClock, "", `{"offset":"-2h","rate":2}`))
	if st.Clock.Offset != "-2h0m0s" || st.Clock.Rate != 2 {
		t.Fatalf("after POST clock: %+v", st)
	}
	if got := fake.Now().Sub(skewed.Now()); got != 2*time.Hour {
		t.Fatalf("the process clock is %s behind, want 2h", got)
	}
	uptime := func() float64 {
		var s Status
		if err := json.Unmarshal(f.do("GET", "/v1/status", "", "").Body.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		return s.UptimeSeconds
	}
	before := uptime()
	fake.Advance(time.Second)
	if d := uptime() - before; d < 1.99 || d > 2.01 {
		t.Fatalf("uptime moved %vs in 1s of real time at rate 2", d)
	}
	// The offset is absolute, and a field left out stays as it is.
	st = faultState(t, f.do("POST", PathFaultClock, "", `{"offset":"30m"}`))
	if st.Clock.Offset != "30m0s" || st.Clock.Rate != 2 {
		t.Fatalf("after a second POST: %+v", st)
	}

	st = faultState(t, f.do("POST", PathFaultTransport, "", `{"duplicate_percent":10,"reorder_percent":20}`))
	if st.Transport != (TransportFault{DuplicatePercent: 10, ReorderPercent: 20}) {
		t.Fatalf("after POST transport: %+v", st)
	}
	st = faultState(t, f.do("POST", PathFaultTransport, "", `{"reorder_percent":0}`))
	if st.Transport != (TransportFault{DuplicatePercent: 10}) {
		t.Fatalf("after a partial POST transport: %+v", st)
	}
}

// Bad bodies are 400 INVALID naming the field, and change nothing.
func TestFaultBadBodies(t *testing.T) {
	skewed := clock.NewSkewed(clock.NewReal())
	tr := &fakeTransport{}
	f := newFixture(t, func(cfg *Config, n *fakeNode) Node {
		cfg.AuthToken = ""
		cfg.Faults = &FaultConfig{Clock: skewed, Transport: tr}
		return n
	})
	for _, c := range []struct{ path, body, field string }{
		{PathFaultClock, ``, "body"},
		{PathFaultClock, `{"offset":"soon"}`, "offset"},
		{PathFaultClock, `{"offset":"1h","rate":0}`, "rate"},
		{PathFaultClock, `{"offset":"1h","rate":-1}`, "rate"},
		{PathFaultClock, `{"offset":"1h","rate":1000}`, "rate"},
		{PathFaultClock, `{"offset":3600}`, "body"},
		{PathFaultClock, `{"ofset":"1h"}`, "body"},
		{PathFaultClock, `{"offset":"1h"} {}`, "body"},
		{PathFaultTransport, `{"duplicate_percent":101}`, "duplicate_percent"},
		{PathFaultTransport, `{"duplicate_percent":5,"reorder_percent":-1}`, "reorder_percent"},
		{PathFaultTransport, `[1,2]`, "body"},
	} {
		rec := f.do("POST", c.path, "", c.body)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("POST %s %s: %d %s", c.path, c.body, rec.Code, rec.Body)
			continue
		}
		if e := errorOf(t, rec.Body.Bytes()); e.Code != CodeInvalid || e.Field != c.field {
			t.Errorf("POST %s %s: error %+v, want INVALID on %q", c.path, c.body, e, c.field)
		}
	}
	if off, rate := skewed.Skew(); off != 0 || rate != 1 {
		t.Errorf("bad bodies changed the clock: offset %s rate %v", off, rate)
	}
	if d, r := tr.Percent(); d != 0 || r != 0 {
		t.Errorf("bad bodies changed the transport: %v %v", d, r)
	}
}

// With an admin token configured, the POSTs need it; GET stays open.
func TestFaultNeedsTokenWhenConfigured(t *testing.T) {
	skewed := clock.NewSkewed(clock.NewReal())
	f := newFixture(t, func(cfg *Config, n *fakeNode) Node {
		cfg.Faults = &FaultConfig{Clock: skewed}
		return n
	})
	if rec := f.do("POST", PathFaultClock, "", `{"offset":"1h"}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("POST", PathFaultClock, "wrong", `{"offset":"1h"}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d %s", rec.Code, rec.Body)
	}
	if off, _ := skewed.Skew(); off != 0 {
		t.Fatal("an unauthenticated call moved the clock")
	}
	if st := faultState(t, f.do("POST", PathFaultClock, testToken, `{"offset":"1h"}`)); st.Clock.Offset != "1h0m0s" {
		t.Fatalf("with the token: %+v", st)
	}
	// No transport hook: 501.
	if rec := f.do("POST", PathFaultTransport, testToken, `{"duplicate_percent":1}`); rec.Code != http.StatusNotImplemented {
		t.Fatalf("transport without a hook: %d %s", rec.Code, rec.Body)
	}
}

func TestNewFaultHandler(t *testing.T) {
	if _, err := NewFaultHandler(FaultConfig{}, "", nil); err == nil {
		t.Fatal("a handler without a clock")
	}
	skewed := clock.NewSkewed(clock.NewReal())
	h, err := NewFaultHandler(FaultConfig{Clock: skewed}, "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("POST", PathFaultClock, "", `{"rate":1.5}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", rec.Code)
	}
	if st := faultState(t, do("POST", PathFaultClock, "tok", `{"rate":1.5}`)); st.Clock.Rate != 1.5 {
		t.Fatalf("state %+v", st)
	}
	if rec := do("DELETE", PathFault, "tok", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", rec.Code)
	}
}

// GET /v1/debug/state is the FSM's state as protojson; a state without snapshots is 501.
func TestDebugState(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do("GET", PathDebugState, "", ""); rec.Code != http.StatusNotImplemented {
		t.Fatalf("fake state without State(): %d %s", rec.Code, rec.Body)
	}
	want := &smv1.FSMState{AppliedIndex: 9, Txns: []*smv1.TxnRecord{{Txid: "tx-1", State: smv1.TxnState_TXN_STATE_DONE}}}
	srv, err := newServer(Config{Node: f.node}, f.r, snapState{f.st, want})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", PathDebugState, nil))
	if rec.Code != http.StatusOK || rec.Header().Get(HeaderAppliedIndex) != "9" {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	var got smv1.FSMState
	if err := protojson.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.GetAppliedIndex() != 9 || len(got.GetTxns()) != 1 || got.GetTxns()[0].GetTxid() != "tx-1" {
		t.Fatalf("state %v", &got)
	}
}

// snapState adds State() to the fake.
type snapState struct {
	*fakeState
	st *smv1.FSMState
}

func (s snapState) State() *smv1.FSMState { return s.st }
