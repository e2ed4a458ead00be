package client

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tracerName is this package's OpenTelemetry instrumentation scope.
const tracerName = "github.com/shardmatch/shardmatch/client"

// startSpan starts a client-kind span on the global provider (a no-op until the
// program installs one).
func startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	return spans.Start(ctx, tracerName, name, trace.SpanKindClient)
}

// setDecision records a decision's txid, outcome and reason on span.
func setDecision(span trace.Span, d *smv1.Decision) {
	if d == nil || !span.IsRecording() {
		return
	}
	span.SetAttributes(spans.TxID.String(d.GetTxid()), spans.Outcome.String(d.GetOutcome().String()),
		spans.Reason.String(d.GetReason().String()))
}

// WithTraceParent returns ctx carrying a W3C traceparent as the remote parent of the
// spans the client starts for calls made with it (an invalid one is ignored). It is
// for callers that have a traceparent string but no OpenTelemetry context; a ctx that
// already carries a span needs nothing: the client's spans are its children, and the
// trace goes on with every message sent, to the coordinator's answers, the shards'
// commands and the decision event.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	return natsutil.WithTraceParent(ctx, tp)
}

// header returns a header with ctx's trace context, or an empty one.
func header(ctx context.Context) nats.Header {
	h := nats.Header{}
	natsutil.InjectTrace(ctx, h)
	return h
}
