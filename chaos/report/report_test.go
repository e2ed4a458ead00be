package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// fixture is a small history: three answered proposals outside the fault, one
// unknown across it, one never answered, a renew and a failed release.
func fixture() *history.History {
	op := func(id, tx string, inv, ret int, res history.OpResult, reason string) history.Op {
		return history.Op{Process: "p", Kind: history.OpPropose, ProposalID: id, TxID: tx, Invoke: msec(inv),
			Return: msec(ret), Returned: ret > 0, Result: res, Reason: reason}
	}
	return &history.History{
		Version: history.FormatVersion, Rho: 0.01, Settled: true,
		Ops: []history.Op{
			op("p1", "t1", 100, 300, history.ResultCommitted, ""),
			op("p2", "t2", 1200, 1500, history.ResultAborted, "REASON_PLAYER_LEASED"),
			op("p3", "", 2000, 4500, history.ResultUnknown, ""),
			op("p4", "t4", 2500, 2600, history.ResultCommitted, ""),
			op("p5", "", 3500, 0, "", ""),
			{Process: "h", Kind: history.OpRenew, TxID: "t1", Invoke: msec(1000), Return: msec(1010), Returned: true, Result: history.ResultOK},
			{Process: "h", Kind: history.OpRelease, TxID: "t4", Invoke: msec(3000), Return: msec(3010), Returned: true, Result: history.ResultFail},
		},
		ShardEvents: []history.ShardEvent{
			{Shard: "s1", Seq: 1, At: msec(250), Kind: history.ShardPrepared, TxID: "t1"},
			{Shard: "s1", Seq: 2, At: msec(280), Kind: history.ShardCommitted, TxID: "t1"},
		},
	}
}

var fault = FaultWindow{Kind: "partition", Targets: "{c1} | {c2,c3}", Start: 3 * time.Second, End: 4 * time.Second}

func TestTimeline(t *testing.T) {
	tl := Timeline(fixture(), time.Second)
	if len(tl) != 5 {
		t.Fatalf("%d samples, want 5 (horizon 4.5s): %+v", len(tl), tl)
	}
	want := []Sample{
		{At: 0, Commits: 1, P50: msec(200), P99: msec(200)},
		{At: time.Second, Aborts: 1, AbortsByReason: map[string]int{"PLAYER_LEASED": 1}, P50: msec(300), P99: msec(300)},
		{At: 2 * time.Second, Commits: 1, P50: msec(100), P99: msec(100)},
		{At: 3 * time.Second},
		{At: 4 * time.Second, Unknown: 1, P50: msec(2500), P99: msec(2500)},
	}
	if !reflect.DeepEqual(tl, want) {
		t.Errorf("timeline\n got %+v\nwant %+v", tl, want)
	}
	if got := Timeline(&history.History{}, time.Second); got != nil {
		t.Errorf("empty history: %+v", got)
	}
}

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, msec(i))
	}
	if q50, q99 := quantile(slices.Clone(ds), 0.5), quantile(slices.Clone(ds), 0.99); q50 != msec(50) || q99 != msec(99) {
		t.Errorf("p50 %s p99 %s", q50, q99)
	}
}

func TestSummarizeCounts(t *testing.T) {
	s := Summarize(&Run{Scenario: "x", History: fixture(), Faults: []FaultWindow{fault}})
	got := [...]int{s.Proposals, s.Committed, s.Aborted, s.Unknown, s.NotReturned, s.Renews, s.RenewsFailed, s.Releases,
		s.ReleasesFailed, s.FaultFreeCount, s.DuringFaultCount}
	if want := [...]int{5, 2, 1, 1, 1, 1, 0, 1, 1, 3, 1}; got != want {
		t.Errorf("counts %v, want %v", got, want)
	}
	if s.P99FaultFree != msec(300) || s.P99DuringFault != msec(2500) || s.P50 != msec(200) {
		t.Errorf("p99 free %s during %s p50 %s", s.P99FaultFree, s.P99DuringFault, s.P50)
	}
	if s.AbortsByReason["PLAYER_LEASED"] != 1 {
		t.Errorf("aborts by reason %v", s.AbortsByReason)
	}
}

func viol(ids ...string) []history.Violation {
	var out []history.Violation
	for _, id := range ids {
		out = append(out, history.Violation{Invariant: id, TxID: "t1", Message: "broken " + id})
	}
	return out
}

func TestVerdict(t *testing.T) {
	okLive := []LivenessResult{{Name: "resume", Pass: true}}
	cases := []struct {
		name       string
		expect     []string
		violations []history.Violation
		live       []LivenessResult
		pass       bool
		missing    []string
		unexpected []string
	}{
		{"clean run", nil, nil, okLive, true, nil, nil},
		{"unexpected violation in a clean run", nil, viol(history.I2), okLive, false, nil, []string{"I2"}},
		{"expected violation present", []string{"I7"}, viol(history.I7, history.I7), okLive, true, nil, nil},
		{"either of two present", []string{"I1|I3"}, viol(history.I3), okLive, true, nil, nil},
		{"both of two present", []string{"I1|I3"}, viol(history.I1, history.I3), okLive, true, nil, nil},
		{"expected violation missing", []string{"I1"}, nil, okLive, false, []string{"I1"}, nil},
		{"expected present, another unexpected", []string{"I1"}, viol(history.I1, history.I2), okLive, false, nil, []string{"I2"}},
		{"optional may appear", []string{"I1", "I5?"}, viol(history.I1, history.I5), okLive, true, nil, nil},
		{"optional need not appear", []string{"I1", "I5?"}, viol(history.I1), okLive, true, nil, nil},
		{"liveness failure", nil, nil, []LivenessResult{{Name: "resume", Pass: false, Detail: "no commit"}}, false, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Summarize(&Run{History: fixture(), Check: history.Report{Violations: c.violations},
				Liveness: c.live, Expect: c.expect})
			if s.Pass != c.pass || (s.Verdict == VerdictPass) != c.pass {
				t.Errorf("pass=%v verdict %s, want %v; reasons %v", s.Pass, s.Verdict, c.pass, s.Reasons)
			}
			if !slices.Equal(s.Missing, c.missing) || !slices.Equal(s.Unexpected, c.unexpected) {
				t.Errorf("missing %v unexpected %v, want %v %v", s.Missing, s.Unexpected, c.missing, c.unexpected)
			}
			if s.Pass != (len(s.Reasons) == 0) {
				t.Errorf("reasons %v with pass=%v", s.Reasons, s.Pass)
			}
			if !s.Pass && !strings.Contains(s.Line(), "FAIL") || s.Pass && !strings.HasPrefix(s.Line(), "PASS") {
				t.Errorf("line %q", s.Line())
			}
		})
	}
}

// checkXML decodes every token of an XML document.
func checkXML(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func wellFormed(t *testing.T, data []byte) {
	t.Helper()
	if err := checkXML(data); err != nil {
		t.Fatalf("timeline.svg is not well-formed XML: %v", err)
	}
}

func TestXMLCheckCatchesBrokenSVG(t *testing.T) {
	for _, bad := range []string{`<svg><text>a < b</text></svg>`, `<svg><g></svg>`, `<svg><text>AT&T</text></svg>`} {
		if checkXML([]byte(bad)) == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestSVG(t *testing.T) {
	h := fixture()
	vs := []history.Violation{
		{Invariant: history.I1, TxID: "t1", Message: "committed at s1 <but> aborted & gone"},
		{Invariant: history.I2, Player: "p9", Message: "two holders"},
	}
	faults := []FaultWindow{fault, {Kind: "kill", Targets: "c2", Start: msec(500), End: 0}}
	svg := SVG("x, seed 1: FAIL", Timeline(h, time.Second), time.Second, faults, h, vs)
	wellFormed(t, svg)
	s := string(svg)
	if n := strings.Count(s, `class="fault"`); n != 2 {
		t.Errorf("%d shaded fault windows, want 2", n)
	}
	for _, want := range []string{"partition {c1} | {c2,c3}", "kill c2", `class="commits"`, `class="aborts"`, `class="p99"`,
		`class="violation"`, "&lt;but&gt; aborted &amp; gone", `class="violation-listed"`, "player=p9"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// Many violations without a time: a few listed, the rest counted.
	var many []history.Violation
	for range 15 {
		many = append(many, history.Violation{Invariant: history.LOG, Node: "c1", Message: "diverged"})
	}
	svg = SVG("t", nil, time.Second, nil, nil, many)
	wellFormed(t, svg)
	if n := strings.Count(string(svg), `class="violation-listed"`); n != svgListLimit || !strings.Contains(string(svg), "and 5 more") {
		t.Errorf("listed %d, want %d and a count of the rest", n, svgListLimit)
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	h := fixture()
	check := history.Report{Violations: []history.Violation{
		{Invariant: history.I1, TxID: "t1", Shard: "s2", Message: "committed at s1 but aborted at s2"},
		{Invariant: history.I3, TxID: "t4", Message: "proposer told COMMITTED, log says ABORTED"},
	}, Stats: map[string]int{"ops": 7}, Notes: []string{"I7 skipped"}}
	run := &Run{Scenario: "bites-x", Seed: 7, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: time.Minute,
		Faults: []FaultWindow{fault}, History: h, Check: check, Expect: []string{"I1|I3"},
		Liveness: []LivenessResult{{Name: "commits resume within 3s of the heal at 4.0s", Pass: true, Measured: msec(1200)}},
		Extra:    map[string]any{"commit_ratio": 0.5, "bad": math.NaN()}}
	sum, err := Write(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Pass {
		t.Errorf("expected violations present, yet %s", sum.Line())
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	md := string(read(FileMarkdown))
	if !strings.HasPrefix(md, "# Chaos run: bites-x (seed 7)\n\n**Verdict: PASS**") {
		t.Errorf("report.md must open with the verdict:\n%s", md)
	}
	for _, want := range append([]string{"| 1 | partition |", "commits resume within 3s", "1.2s", "commit_ratio", "I7 skipped"},
		check.Violations[0].Message, check.Violations[1].Message) {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var doc Document
	if err := json.Unmarshal(read(FileJSON), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Committed != 2 || len(doc.Summary.Violations) != 2 || len(doc.Timeline) != 5 || doc.BucketNS != time.Second {
		t.Errorf("report.json: %+v", doc.Summary)
	}
	wellFormed(t, read(FileSVG))
	back, err := history.ReadJSON(bytes.NewReader(read(FileHistory)))
	if err != nil || len(back.Ops) != len(h.Ops) {
		t.Errorf("history.json: %v", err)
	}

	// The same run without its expectation fails, and says why.
	run.Expect = nil
	sum, err = Write(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	md = string(read(FileMarkdown))
	if sum.Pass || !strings.Contains(md, "**Verdict: FAIL**") || !strings.Contains(md, "invariants violated: I1 atomicity ×1") {
		t.Errorf("unexpected violations must fail the run:\n%s", md)
	}
	if _, err := Write(dir, &Run{}); !errors.Is(err, ErrNoHistory) {
		t.Errorf("no history: %v", err)
	}
}

func TestBucketFor(t *testing.T) {
	for horizon, want := range map[time.Duration]time.Duration{40 * time.Second: time.Second,
		2 * time.Minute: time.Second, 10 * time.Minute: 5 * time.Second, 121 * time.Second: 2 * time.Second} {
		if got := BucketFor(horizon); got != want {
			t.Errorf("BucketFor(%s) = %s, want %s", horizon, got, want)
		}
	}
}
