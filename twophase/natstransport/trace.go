package natstransport

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tracerName is this package's OpenTelemetry instrumentation scope.
const tracerName = "github.com/shardmatch/shardmatch/twophase/natstransport"

// sendSpanNames are the producer span names by phase.
var sendSpanNames = map[string]string{PhasePrepare: spans.Prepare, PhaseCommit: spans.Commit, PhaseAbort: spans.Abort}

// handleSpanNames are the shard's consumer span names by phase.
var handleSpanNames = map[string]string{PhasePrepare: spans.ShardPrepare, PhaseCommit: spans.ShardCommit, PhaseAbort: spans.ShardAbort}

// startSendSpan starts the producer span of one command, shardmatch.<phase> <shard>,
// under ctx's span (the driver's: the proposal's intake span, or a recovery root).
// The command's traceparent header is this span's, so the shard's span is its child.
// A command that is no prepare, commit or abort gets no span: send refuses it.
func startSendSpan(ctx context.Context, shardID string, cmd *smv1.ShardCommand) (context.Context, trace.Span) {
	info := describe(cmd)
	name, ok := sendSpanNames[info.phase]
	if !ok {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := spans.Start(ctx, tracerName, name+" "+shardID, trace.SpanKindProducer)
	if span.IsRecording() {
		span.SetAttributes(spans.NATS, spans.Shard.String(shardID), spans.TxID.String(info.txid),
			spans.Term.Int64(int64(info.term)))
	}
	return ctx, span
}

// startHandleSpan starts the shard's consumer span for job j,
// shardmatch.shard.<phase>, under the coordinator's producer span that the command
// carried (in ctx).
func (s *ShardServer) startHandleSpan(ctx context.Context, j job) (context.Context, trace.Span) {
	ctx, span := spans.Start(ctx, tracerName, handleSpanNames[j.info.phase], trace.SpanKindConsumer)
	if span.IsRecording() {
		span.SetAttributes(spans.NATS, spans.Destination.String(s.cmdSubj), spans.Shard.String(s.cfg.ShardID),
			spans.TxID.String(j.info.txid), spans.Term.Int64(int64(j.info.term)))
		if md, err := j.msg.Metadata(); err == nil {
			span.SetAttributes(spans.Delivery.Int64(int64(md.NumDelivered)))
		}
	}
	return ctx, span
}

// endHandleSpan records the shard's answer (its vote, or the outcome it acked) and
// ends span.
func endHandleSpan(span trace.Span, reply *smv1.ShardReply, err error) {
	if span.IsRecording() {
		switch {
		case reply.GetVote() != nil:
			span.SetAttributes(spans.Vote.String(reply.GetVote().GetVote().String()))
		case reply.GetAck() != nil:
			span.SetAttributes(spans.Outcome.String(reply.GetAck().GetOutcome().String()))
		}
	}
	spans.End(span, err)
}
