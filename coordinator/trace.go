package coordinator

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// tracerName is this package's OpenTelemetry instrumentation scope.
const tracerName = "github.com/shardmatch/shardmatch/coordinator"

// startSpan starts an internal span under ctx's on the global provider.
func startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	return spans.Start(ctx, tracerName, name, trace.SpanKindInternal)
}

// endPolicySpan records a verdict (allow, bundle revision, denial codes) and ends span.
func endPolicySpan(span trace.Span, v *smv1.PolicyVerdict, err error) {
	if span.IsRecording() && v != nil {
		codes := make([]string, len(v.GetDenials()))
		for i, d := range v.GetDenials() {
			codes[i] = d.GetCode()
		}
		span.SetAttributes(spans.PolicyAllow.Bool(v.GetAllow()), spans.PolicyRevision.String(v.GetRevision()),
			spans.PolicyDenials.StringSlice(codes))
	}
	spans.End(span, err)
}

// endBeginSpan records what a Begin entry made (txid, Raft index, whether it was new,
// and its state) and ends span.
func endBeginSpan(span trace.Span, res CommandResult, err error) {
	if err == nil {
		err = res.Err
	}
	if span.IsRecording() && err == nil && res.Txn != nil {
		span.SetAttributes(spans.TxID.String(res.Txn.GetTxid()), spans.RaftIndex.Int64(int64(res.Txn.GetBeginIndex())),
			spans.Created.Bool(res.Created), spans.State.String(res.Txn.GetState().String()))
	}
	spans.End(span, err)
}

// recoverTrace is what a leader taking over txn t passes to the driver: the
// proposal's span context, if the log kept its traceparent, for the recovery span to
// link to.
func recoverTrace(t *smv1.TxnRecord) trace.SpanContext {
	sc, _ := spans.ParseTraceParent(t.GetTraceparent())
	return sc
}

// decideAttrs describes a Decide entry on its span.
func decideAttrs(d *smv1.Decide) []attribute.KeyValue {
	return []attribute.KeyValue{spans.TxID.String(d.GetTxid()), spans.Outcome.String(d.GetOutcome().String()),
		spans.Reason.String(d.GetReason().String())}
}
