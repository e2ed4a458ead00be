package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry"
)

var (
	testTraceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	testSpanID  = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
)

func spanCtx() context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: testTraceID, SpanID: testSpanID, TraceFlags: trace.FlagsSampled}))
}

func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.WithTraceIDs(slog.New(slog.NewJSONHandler(&buf, nil)).With("node", "c1"))
	log.InfoContext(spanCtx(), "with span", "k", 1)
	log.InfoContext(context.Background(), "without span")
	log.Info("no context")
	lines := jsonLines(t, &buf)
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0]["trace_id"] != testTraceID.String() || lines[0]["span_id"] != testSpanID.String() ||
		lines[0]["node"] != "c1" || lines[0]["k"] != float64(1) {
		t.Fatalf("record with a span: %v", lines[0])
	}
	for _, l := range lines[1:] {
		if _, ok := l["trace_id"]; ok {
			t.Fatalf("record without a span has a trace id: %v", l)
		}
		if _, ok := l["span_id"]; ok {
			t.Fatalf("record without a span has a span id: %v", l)
		}
	}
}

// The wrapper survives With and WithGroup, keeps the inner handler's level, and is
// not stacked twice.
func TestLogHandlerDerived(t *testing.T) {
	var buf bytes.Buffer
	base := telemetry.WithTraceIDs(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if again := telemetry.WithTraceIDs(base); again != base {
		t.Fatal("WithTraceIDs wrapped a LogHandler again")
	}
	base.With("a", "b").InfoContext(spanCtx(), "below level")
	base.With("a", "b").WarnContext(spanCtx(), "derived")
	base.WithGroup("g").WarnContext(spanCtx(), "grouped", "x", 1)
	lines := jsonLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("lines %v", lines)
	}
	if lines[0]["a"] != "b" || lines[0]["trace_id"] != testTraceID.String() {
		t.Fatalf("With: %v", lines[0])
	}
	g, _ := lines[1]["g"].(map[string]any)
	if g["trace_id"] != testTraceID.String() || g["x"] != float64(1) {
		t.Fatalf("WithGroup: %v", lines[1])
	}
}

// A record handed to two handlers (as a fan-out handler does) must not share
// attribute storage with the ids one of them added: when two copies of a record both
// append into it, slog marks the record with a "!BUG" attribute.
func TestLogHandlerDoesNotModifyCallersRecord(t *testing.T) {
	var buf bytes.Buffer
	h := telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil))
	r := slog.Record{Message: "m"}
	for i := 0; i < 10; i++ { // 5 inline, 5 in a slice with room for 3 more
		r.AddAttrs(slog.Int("a", i))
	}
	if err := h.Handle(spanCtx(), r); err != nil {
		t.Fatal(err)
	}
	r.AddAttrs(slog.String("late", "x"))
	var keys []string
	r.Attrs(func(a slog.Attr) bool { keys = append(keys, a.Key); return true })
	if len(keys) != 11 || keys[10] != "late" {
		t.Fatalf("caller's record has attributes %v: Handle appended into its storage", keys)
	}
	if !strings.Contains(buf.String(), testTraceID.String()) || strings.Contains(buf.String(), "late") {
		t.Fatalf("output %s", buf.String())
	}
}
