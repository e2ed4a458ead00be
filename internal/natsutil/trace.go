package natsutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceParentHeader is the W3C Trace Context header every shardmatch message carries.
const TraceParentHeader = "traceparent"

// TraceStateHeader is the W3C header for vendor trace state, carried when present.
const TraceStateHeader = "tracestate"

// ErrInvalidTraceParent is returned for a string that is not a W3C traceparent.
var ErrInvalidTraceParent = errors.New("natsutil: invalid traceparent")

// propagator is the wire format of trace context on every message. It is fixed
// rather than taken from otel.GetTextMapPropagator: W3C traceparent is part of the
// protocol (docs/protocol.md), which shards in other languages implement from the
// text, so an OTEL_PROPAGATORS setting must not change what goes on the wire.
var propagator propagation.TextMapPropagator = propagation.TraceContext{}

// HeaderCarrier adapts a nats.Header to OpenTelemetry's propagation.TextMapCarrier.
// Get matches the key exactly first, then ignoring case: NATS headers are
// case-sensitive and W3C names the headers in lower case, but a sender in another
// language may have canonicalised them ("Traceparent"). Set writes the key as given.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, or "".
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces key's values with value. c must not be nil.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys present.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// InjectTrace writes the span context ctx carries (the current span, or a remote
// parent) to h as traceparent (and tracestate if any). It writes nothing when ctx
// has no valid span context; h must not be nil.
func InjectTrace(ctx context.Context, h nats.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, HeaderCarrier(h))
}

// ExtractTrace returns ctx with the remote span context carried by h as the parent
// of the next span started from it. ctx is returned unchanged when h carries none,
// or an invalid one (a bad trace header is worse than none).
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, HeaderCarrier(h))
}

// ValidateTraceParent checks tp against W3C Trace Context (level 1):
// "vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower-case hex, trace and
// parent ids not all zero, version not "ff"; version 00 has exactly that length, later
// versions may append "-..." fields.
func ValidateTraceParent(tp string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidTraceParent, tp, why) }
	if len(tp) < 55 {
		return bad("too short")
	}
	if tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return bad("fields must be separated by '-'")
	}
	version, traceID, parentID, flags := tp[0:2], tp[3:35], tp[36:52], tp[53:55]
	for _, f := range []string{version, traceID, parentID, flags} {
		if !isLowerHex(f) {
			return bad("fields must be lower-case hex")
		}
	}
	switch {
	case version == "ff":
		return bad("version ff is invalid")
	case version == "00" && len(tp) != 55:
		return bad("version 00 must be 55 characters")
	case len(tp) > 55 && tp[55] != '-':
		return bad("extra fields must follow '-'")
	case strings.Trim(traceID, "0") == "":
		return bad("trace id is all zeros")
	case strings.Trim(parentID, "0") == "":
		return bad("parent id is all zeros")
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// SetTraceParent puts tp on h (which must not be nil) after validating it. An invalid
// tp leaves h unchanged: a bad trace header is worse than none. Code that has a
// context uses InjectTrace instead.
func SetTraceParent(h nats.Header, tp string) error {
	if err := ValidateTraceParent(tp); err != nil {
		return err
	}
	h.Set(TraceParentHeader, tp)
	return nil
}

// TraceParent returns the valid traceparent on h, if any, matching the header name
// as HeaderCarrier does. Code that wants a context uses ExtractTrace instead.
func TraceParent(h nats.Header) (string, bool) {
	if h == nil {
		return "", false
	}
	tp := HeaderCarrier(h).Get(TraceParentHeader)
	if tp == "" || ValidateTraceParent(tp) != nil {
		return "", false
	}
	return tp, true
}

// WithTraceParent returns ctx whose parent span context is tp (a remote parent), so
// that the next span started from ctx, and every message sent on its behalf, joins
// tp's trace. An invalid tp is ignored (ctx is returned unchanged).
func WithTraceParent(ctx context.Context, tp string) context.Context {
	if ValidateTraceParent(tp) != nil {
		return ctx
	}
	out := propagator.Extract(ctx, propagation.MapCarrier{TraceParentHeader: tp})
	if !trace.SpanContextFromContext(out).IsValid() {
		return ctx
	}
	return out
}

// TraceParentFrom returns the W3C traceparent of the span context ctx carries (its
// current span's, or a remote parent's), if it has a valid one.
func TraceParentFrom(ctx context.Context) (string, bool) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", false
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	tp := c[TraceParentHeader]
	return tp, tp != ""
}
