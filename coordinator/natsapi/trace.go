package natsapi

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
)

// tracerName is this package's OpenTelemetry instrumentation scope.
const tracerName = "github.com/shardmatch/shardmatch/coordinator/natsapi"

// startIntakeSpan starts the consumer span of one proposal taken from SM_REQ, child of
// the proposer's span carried in the message's headers (a root if there is none).
// The node's policy and Raft spans hang under it.
func (s *Server) startIntakeSpan(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata) (context.Context, trace.Span) {
	ctx, span := spans.Start(natsutil.ExtractTrace(ctx, m.Headers()), tracerName, spans.Intake, trace.SpanKindConsumer)
	if span.IsRecording() {
		span.SetAttributes(spans.NATS, spans.Destination.String(m.Subject()))
		if md != nil {
			span.SetAttributes(spans.Delivery.Int64(int64(md.NumDelivered)))
		}
	}
	return ctx, span
}
