package natsutil_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestValidateTraceParent(t *testing.T) {
	for _, ok := range []string{validTP, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"} {
		if err := natsutil.ValidateTraceParent(ok); err != nil {
			t.Errorf("ValidateTraceParent(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "garbage",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
	} {
		if err := natsutil.ValidateTraceParent(bad); !errors.Is(err, natsutil.ErrInvalidTraceParent) {
			t.Errorf("ValidateTraceParent(%q) = %v, want ErrInvalidTraceParent", bad, err)
		}
	}
}

func TestTraceParentHeader(t *testing.T) {
	h := nats.Header{}
	if _, ok := natsutil.TraceParent(h); ok {
		t.Fatal("empty header has a traceparent")
	}
	if _, ok := natsutil.TraceParent(nil); ok {
		t.Fatal("nil header has a traceparent")
	}
	if err := natsutil.SetTraceParent(h, "nope"); err == nil || len(h) != 0 {
		t.Fatalf("SetTraceParent(invalid) = %v, header %v", err, h)
	}
	if err := natsutil.SetTraceParent(h, validTP); err != nil {
		t.Fatal(err)
	}
	if h.Get("traceparent") != validTP {
		t.Fatalf("header = %v", h)
	}
	if tp, ok := natsutil.TraceParent(h); !ok || tp != validTP {
		t.Fatalf("TraceParent = %q %v", tp, ok)
	}
	// Another language's client may have canonicalised the name.
	if tp, ok := natsutil.TraceParent(nats.Header{"Traceparent": {validTP}}); !ok || tp != validTP {
		t.Fatalf("TraceParent(canonical) = %q %v", tp, ok)
	}
	if _, ok := natsutil.TraceParent(nats.Header{"traceparent": {"junk"}}); ok {
		t.Fatal("an invalid traceparent was returned")
	}
}

func TestTraceParentContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := natsutil.TraceParentFrom(ctx); ok {
		t.Fatal("background context has a traceparent")
	}
	if natsutil.WithTraceParent(ctx, "junk") != ctx {
		t.Fatal("an invalid traceparent changed the context")
	}
	if tp, ok := natsutil.TraceParentFrom(natsutil.WithTraceParent(ctx, validTP)); !ok || tp != validTP {
		t.Fatalf("TraceParentFrom = %q %v", tp, ok)
	}
}

func TestHeaderCarrier(t *testing.T) {
	h := nats.Header{}
	c := natsutil.HeaderCarrier(h)
	c.Set("traceparent", validTP)
	if got := c.Get("traceparent"); got != validTP {
		t.Fatalf("Get = %q", got)
	}
	if got := c.Get("TRACEPARENT"); got != validTP {
		t.Fatalf("Get(other case) = %q", got)
	}
	if got := c.Get("tracestate"); got != "" {
		t.Fatalf("Get(absent) = %q", got)
	}
	if keys := c.Keys(); len(keys) != 1 || keys[0] != "traceparent" {
		t.Fatalf("Keys = %v", keys)
	}
	if h.Get("traceparent") != validTP {
		t.Fatal("Set did not write through to the nats.Header")
	}
}

// A traceparent survives header → context → header unchanged, tracestate included.
func TestInjectExtractRoundTrip(t *testing.T) {
	in := nats.Header{"Traceparent": {validTP}, "tracestate": {"vendor=x"}}
	ctx := natsutil.ExtractTrace(context.Background(), in)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("extracted %+v", sc)
	}
	out := nats.Header{}
	natsutil.InjectTrace(ctx, out)
	if out.Get(natsutil.TraceParentHeader) != validTP || out.Get(natsutil.TraceStateHeader) != "vendor=x" {
		t.Fatalf("injected %v", out)
	}
	// Nothing to inject: the header stays empty.
	empty := nats.Header{}
	natsutil.InjectTrace(context.Background(), empty)
	if len(empty) != 0 {
		t.Fatalf("injected %v from a context without a span", empty)
	}
	// A broken header is ignored, not half-used.
	bg := context.Background()
	for _, h := range []nats.Header{nil, {}, {"traceparent": {"junk"}},
		{"traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}} {
		if got := natsutil.ExtractTrace(bg, h); trace.SpanContextFromContext(got).IsValid() {
			t.Errorf("ExtractTrace(%v) gave a valid span context", h)
		}
	}
}
