package natsutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// TraceParentHeader is the W3C Trace Context header every shardmatch message carries.
const TraceParentHeader = "traceparent"

// ErrInvalidTraceParent is returned for a string that is not a W3C traceparent.
var ErrInvalidTraceParent = errors.New("natsutil: invalid traceparent")

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
// tp leaves h unchanged: a bad trace header is worse than none.
func SetTraceParent(h nats.Header, tp string) error {
	if err := ValidateTraceParent(tp); err != nil {
		return err
	}
	h.Set(TraceParentHeader, tp)
	return nil
}

// TraceParent returns the valid traceparent on h, if any. NATS headers are
// case-sensitive and W3C names the header in lower case, but other spellings are
// accepted as a sender in another language may have canonicalised it.
func TraceParent(h nats.Header) (string, bool) {
	if h == nil {
		return "", false
	}
	tp := h.Get(TraceParentHeader)
	if tp == "" {
		for k, v := range h {
			if len(v) > 0 && strings.EqualFold(k, TraceParentHeader) {
				tp = v[0]
				break
			}
		}
	}
	if tp == "" || ValidateTraceParent(tp) != nil {
		return "", false
	}
	return tp, true
}

type traceParentKey struct{}

// WithTraceParent returns ctx carrying tp, for the next message sent on its behalf.
// An invalid tp is ignored (ctx is returned unchanged). This is the stand-in for an
// OpenTelemetry propagator until telemetry lands.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	if ValidateTraceParent(tp) != nil {
		return ctx
	}
	return context.WithValue(ctx, traceParentKey{}, tp)
}

// TraceParentFrom returns the traceparent ctx carries, if any.
func TraceParentFrom(ctx context.Context) (string, bool) {
	tp, ok := ctx.Value(traceParentKey{}).(string)
	return tp, ok
}
