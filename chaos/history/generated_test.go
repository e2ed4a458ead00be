package history

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestGeneratedHistoriesPass: a correct coordinator never trips a checker, whatever
// the seed, and the generator really exercises what the checkers must tolerate.
func TestGeneratedHistoriesPass(t *testing.T) {
	total := map[string]int{}
	for seed := int64(1); seed <= 8; seed++ {
		h := generate(defaultGen(seed, 1500))
		r := Check(h)
		if !r.OK() {
			t.Fatalf("seed %d: correct history flagged:\n%s", seed, r)
		}
		if len(r.Notes) > 0 {
			t.Errorf("seed %d: unexpected notes %v", seed, r.Notes)
		}
		for k, n := range r.Stats {
			total[k] += n
		}
		for _, l := range []struct{ node, kind string }{{"n3", "restored"}, {"n2", "restored"}} {
			found := false
			for _, ev := range h.LeaseEvents {
				found = found || ev.Node == l.node && string(ev.Kind) == l.kind
			}
			if !found {
				t.Errorf("seed %d: %s never %s a snapshot", seed, l.node, l.kind)
			}
		}
	}
	t.Logf("8 seeds: %v", total)
	for _, k := range []string{"committed", "aborted", "unknown", "fail", "renewed", "expired", "released", "freed", "ok"} {
		if total[k] == 0 {
			t.Errorf("generated histories never have %q", k)
		}
	}
}

func TestCheckDoesNotModifyHistory(t *testing.T) {
	h := generate(defaultGen(4, 600))
	before := h.Clone()
	Check(h)
	if !reflect.DeepEqual(h, before) {
		t.Fatal("Check modified its input")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for name, h := range map[string]*History{"fixture": fixture(), "generated": generate(defaultGen(3, 800))} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := h.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			first := buf.String()
			got, err := ReadJSON(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, h) {
				t.Fatal("decoded history differs from the original")
			}
			buf.Reset()
			if err := got.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			if buf.String() != first {
				t.Fatal("re-encoding differs")
			}
			if !reflect.DeepEqual(Check(got), Check(h)) {
				t.Fatal("report differs after the round trip")
			}
			for _, key := range []string{`"shard_events"`, `"lease_events"`, `"proposal_id"`, `"invoke_ns"`, `"applied_index"`, `"renew_seq"`} {
				if !strings.Contains(first, key) {
					t.Errorf("JSON lacks %s", key)
				}
			}
		})
	}
}

func TestReadJSONRejectsUnknownVersion(t *testing.T) {
	_, err := ReadJSON(strings.NewReader(`{"version": 99, "ops": []}`))
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("err = %v, want ErrVersion", err)
	}
	if _, err := ReadJSON(strings.NewReader(`{`)); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

func BenchmarkCheck(b *testing.B) {
	h := generate(defaultGen(1, 10000))
	for b.Loop() {
		if r := Check(h); !r.OK() {
			b.Fatal(r)
		}
	}
	b.ReportMetric(float64(len(h.Ops)), "ops")
	b.ReportMetric(float64(len(h.LeaseEvents)+len(h.ShardEvents)), "events")
}

func TestCheckEmptyAndPartialHistories(t *testing.T) {
	if r := Check(&History{}); !r.OK() || len(r.Notes) == 0 {
		t.Errorf("empty history: %s", r)
	}
	// Ops and shard journals only, as an external runner might record.
	h := fixture()
	h.LeaseEvents, h.ShardEvents = nil, nil
	if r := Check(h); !r.OK() {
		t.Errorf("journals-only history: %s", r)
	} else if !strings.Contains(strings.Join(r.Notes, " "), "no lease events") {
		t.Errorf("want a note on the skipped lease checks: %v", r.Notes)
	}
}
