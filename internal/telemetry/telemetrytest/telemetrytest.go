// Package telemetrytest records the spans a test produces: Record installs an SDK
// TracerProvider with an in-memory span recorder as the global provider for the
// length of one test, and puts the previous provider back when it ends.
//
// The global provider is process-wide, so a test that calls Record must not run in
// parallel with other tests that start spans (do not call t.Parallel in it); tests
// that do run in parallel start only after it has finished.
//
// It is test code that ships, like net/http/httptest: production code never imports it.
package telemetrytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Recorder holds the spans ended while it is installed.
type Recorder struct {
	rec *tracetest.SpanRecorder
}

// Record makes an always-sampling SDK provider that records into the returned
// Recorder the global TracerProvider until the test ends.
func Record(tb testing.TB) *Recorder {
	tb.Helper()
	r := &Recorder{rec: tracetest.NewSpanRecorder()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(r.rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tb.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})
	return r
}

// Ended returns every span ended so far, in the order they ended.
func (r *Recorder) Ended() []sdktrace.ReadOnlySpan { return r.rec.Ended() }

// Named returns the ended spans called name.
func (r *Recorder) Named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// InTrace returns the ended spans of trace id.
func (r *Recorder) InTrace(id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.rec.Ended() {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// WaitFor polls until match holds for the ended spans, or fails the test after
// timeout with match's last complaint and the spans recorded.
func (r *Recorder) WaitFor(tb testing.TB, timeout time.Duration, match func([]sdktrace.ReadOnlySpan) error) {
	tb.Helper()
	if err := r.Await(timeout, match); err != nil {
		tb.Fatalf("%v\n%s", err, Dump(r.rec.Ended()))
	}
}

// Await polls until match holds for the ended spans and returns nil, or returns
// match's last complaint after timeout.
func (r *Recorder) Await(timeout time.Duration, match func([]sdktrace.ReadOnlySpan) error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := match(r.rec.Ended())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("spans not as expected within %s: %w", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ChildOf reports, as an error, why child is not a direct child of parent in the
// same trace (nil if it is).
func ChildOf(child, parent sdktrace.ReadOnlySpan) error {
	switch {
	case child == nil || parent == nil:
		return fmt.Errorf("missing span (child %v, parent %v)", name(child), name(parent))
	case child.SpanContext().TraceID() != parent.SpanContext().TraceID():
		return fmt.Errorf("%s is in trace %s, %s in %s", child.Name(), child.SpanContext().TraceID(),
			parent.Name(), parent.SpanContext().TraceID())
	case child.Parent().SpanID() != parent.SpanContext().SpanID():
		return fmt.Errorf("%s's parent is span %s, not %s (%s)", child.Name(), child.Parent().SpanID(),
			parent.Name(), parent.SpanContext().SpanID())
	}
	return nil
}

// Attr returns span s's attribute key as a string ("" if absent).
func Attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// Dump lists spans one per line (name, ids, parent), for failure messages.
func Dump(spans []sdktrace.ReadOnlySpan) string {
	var out string
	for _, s := range spans {
		out += fmt.Sprintf("  %-32s trace=%s span=%s parent=%s kind=%s\n", s.Name(),
			s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.SpanKind())
	}
	return out
}

func name(s sdktrace.ReadOnlySpan) string {
	if s == nil {
		return "<nil>"
	}
	return s.Name()
}

// StartRoot starts a root span, as a caller of the code under test would, and
// returns ctx carrying it.
func StartRoot(ctx context.Context, name string) (context.Context, trace.Span) {
	return otel.Tracer("github.com/shardmatch/shardmatch/internal/telemetry/telemetrytest").Start(ctx, name, trace.WithNewRoot())
}
