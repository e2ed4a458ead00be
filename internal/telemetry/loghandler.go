package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// The attributes LogHandler adds.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// LogHandler wraps a slog.Handler: a record logged with a context that carries a
// valid span (logger.InfoContext(ctx, ...)) gets trace_id and span_id attributes, so
// that a log line leads to its trace. Records without one pass through unchanged.
// Inside a WithGroup the ids land in that group, like any other attribute.
type LogHandler struct {
	inner slog.Handler
}

var _ slog.Handler = (*LogHandler)(nil)

// NewLogHandler wraps h.
func NewLogHandler(h slog.Handler) *LogHandler { return &LogHandler{inner: h} }

// WithTraceIDs returns l logging through a LogHandler (l itself if it already does).
func WithTraceIDs(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*LogHandler); ok {
		return l
	}
	return slog.New(NewLogHandler(l.Handler()))
}

// Enabled defers to the wrapped handler.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle adds the ids of ctx's span, if any, and passes r on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone() // the caller's record may share attribute storage with r
		r.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs wraps the wrapped handler's WithAttrs.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{inner: h.inner.WithAttrs(attrs)}
}

// WithGroup wraps the wrapped handler's WithGroup.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{inner: h.inner.WithGroup(name)}
}
