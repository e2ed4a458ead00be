// Package spans names what shardmatch traces: the span names and attribute keys every
// component uses, in one place so that the components, their tests and
// docs/operations.md agree, and the two helpers that start and end a span on the
// global TracerProvider.
//
// Library packages import this package, never its parent internal/telemetry: it
// depends on the OpenTelemetry API only, so the client SDK stays free of the OTel SDK
// and exporters.
package spans

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span names. Per-shard producer spans are named Prepare/Commit/Abort + " " + shard.
const (
	Propose       = "shardmatch.propose"        // client: Propose, retries and status fallback included
	Status        = "shardmatch.status"         // client: Status
	Renew         = "shardmatch.renew"          // client: Renew
	Release       = "shardmatch.release"        // client: Release
	RegisterShard = "shardmatch.register_shard" // client: RegisterShard
	Intake        = "shardmatch.intake"         // leader: one proposal from SM_REQ to its answer
	APIPrefix     = "shardmatch.api."           // leader: a core request (status, lease, register)
	PolicyEval    = "shardmatch.policy.eval"    // leader: policy evaluation of a proposal
	RaftBegin     = "shardmatch.raft.begin"     // leader: the Begin entry, proposed to applied
	RaftDecide    = "shardmatch.raft.decide"    // leader: the Decide entry, proposed to applied
	Recover       = "shardmatch.recover"        // new leader: root of a transaction taken over
	Prepare       = "shardmatch.prepare"        // leader → shard: one Prepare sent
	Commit        = "shardmatch.commit"         // leader → shard: one Commit sent
	Abort         = "shardmatch.abort"          // leader → shard: one Abort sent
	ShardPrepare  = "shardmatch.shard.prepare"  // shard: one Prepare handled
	ShardCommit   = "shardmatch.shard.commit"   // shard: one Commit handled
	ShardAbort    = "shardmatch.shard.abort"    // shard: one Abort handled
)

// Attribute keys.
const (
	ProposalID     = attribute.Key("shardmatch.proposal_id")
	Mode           = attribute.Key("shardmatch.mode")
	TxID           = attribute.Key("shardmatch.txid")
	Outcome        = attribute.Key("shardmatch.outcome")
	Reason         = attribute.Key("shardmatch.reason")
	Shard          = attribute.Key("shardmatch.shard")
	ID             = attribute.Key("shardmatch.id") // a Status argument: txid or proposal id
	Term           = attribute.Key("shardmatch.term")
	Vote           = attribute.Key("shardmatch.vote")
	State          = attribute.Key("shardmatch.txn_state")
	Created        = attribute.Key("shardmatch.created") // Begin made a new txn (false: a repeat)
	RaftIndex      = attribute.Key("shardmatch.raft.index")
	PolicyAllow    = attribute.Key("shardmatch.policy.allow")
	PolicyRevision = attribute.Key("shardmatch.policy.revision")
	PolicyDenials  = attribute.Key("shardmatch.policy.denials") // the denial codes
	Delivery       = attribute.Key("messaging.message.delivery_count")
	MessagingSys   = attribute.Key("messaging.system")
	Destination    = attribute.Key("messaging.destination.name")
)

// NATS is the messaging.system attribute of every producer and consumer span.
var NATS = MessagingSys.String("nats")

// Start starts a span of kind on the global provider with the instrumentation scope
// tracer (the package's import path). The tracer is looked up on every call rather
// than kept, so that a provider installed after start-up, or by a test, takes effect.
// With no provider installed the span is a no-op that carries ctx's span context on.
func Start(ctx context.Context, tracer, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	return otel.Tracer(tracer).Start(ctx, name, trace.WithSpanKind(kind))
}

// End marks err on span, if any, and ends it.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceParent renders sc as a W3C traceparent, for storing a trace reference (the
// coordinator keeps the proposal's in its log); false if sc is invalid.
func TraceParent(sc trace.SpanContext) (string, bool) {
	if !sc.IsValid() {
		return "", false
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	tp := c["traceparent"]
	return tp, tp != ""
}

// ParseTraceParent returns the span context a stored traceparent names, marked
// remote; false if tp is empty or not a valid traceparent.
func ParseTraceParent(tp string) (trace.SpanContext, bool) {
	if tp == "" {
		return trace.SpanContext{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid()
}
