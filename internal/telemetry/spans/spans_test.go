package spans_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	"github.com/shardmatch/shardmatch/internal/telemetry/telemetrytest"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTraceParentRoundTrip(t *testing.T) {
	sc, ok := spans.ParseTraceParent(validTP)
	if !ok || !sc.IsRemote() || !sc.IsSampled() || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("ParseTraceParent = %+v, %v", sc, ok)
	}
	if tp, ok := spans.TraceParent(sc); !ok || tp != validTP {
		t.Fatalf("TraceParent = %q, %v", tp, ok)
	}
	for _, bad := range []string{"", "junk", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if _, ok := spans.ParseTraceParent(bad); ok {
			t.Errorf("ParseTraceParent(%q) accepted it", bad)
		}
	}
	if _, ok := spans.TraceParent(trace.SpanContext{}); ok {
		t.Fatal("TraceParent rendered an invalid span context")
	}
}

// Start uses whatever provider is global when it is called, and End records errors.
func TestStartEndOnTheCurrentProvider(t *testing.T) {
	// No provider: a no-op span that passes its parent's context on.
	parent := trace.ContextWithSpanContext(context.Background(), mustParse(t))
	ctx, span := spans.Start(parent, "test", "noop", trace.SpanKindInternal)
	if span.IsRecording() || trace.SpanContextFromContext(ctx).SpanID() != mustParse(t).SpanID() {
		t.Fatalf("without a provider: recording %v, span context %+v", span.IsRecording(), trace.SpanContextFromContext(ctx))
	}
	spans.End(span, errors.New("ignored"))

	rec := telemetrytest.Record(t)
	_, ok := spans.Start(parent, "test", "ok", trace.SpanKindServer)
	spans.End(ok, nil)
	_, failed := spans.Start(parent, "test", "failed", trace.SpanKindClient)
	spans.End(failed, errors.New("boom"))
	got := rec.Ended()
	if len(got) != 2 {
		t.Fatalf("recorded %d spans:\n%s", len(got), telemetrytest.Dump(got))
	}
	check := func(s sdktrace.ReadOnlySpan, kind trace.SpanKind, code codes.Code) {
		t.Helper()
		if s.SpanKind() != kind || s.Status().Code != code || s.Parent().SpanID() != mustParse(t).SpanID() {
			t.Errorf("%s: kind %s status %v parent %s", s.Name(), s.SpanKind(), s.Status(), s.Parent().SpanID())
		}
	}
	check(got[0], trace.SpanKindServer, codes.Unset)
	check(got[1], trace.SpanKindClient, codes.Error)
	if got[1].Status().Description != "boom" {
		t.Errorf("status %v", got[1].Status())
	}
}

func mustParse(t *testing.T) trace.SpanContext {
	sc, ok := spans.ParseTraceParent(validTP)
	if !ok {
		t.Fatal("bad test traceparent")
	}
	return sc
}
