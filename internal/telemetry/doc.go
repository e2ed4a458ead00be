// Package telemetry turns on OpenTelemetry tracing for a shardmatch binary (docs/operations.md, "Tracing"):
// Setup builds the SDK TracerProvider from the standard OTEL_* environment, exporting
// over OTLP/HTTP when an endpoint is configured, and installs it as the global
// provider with the W3C TraceContext propagator; LogHandler makes log/slog records
// carry the trace_id and span_id of the context they were logged with.
//
// Library packages (client, coordinator, twophase, ...) never import this package:
// they start spans on the global provider through internal/telemetry/spans (the span
// names and attribute keys, on the OpenTelemetry API only), a no-op until a binary's
// main calls Setup. NATS header propagation lives in internal/natsutil
// (HeaderCarrier, InjectTrace, ExtractTrace) so that the client SDK, which needs it,
// does not pull in the OpenTelemetry SDK and exporters that this package imports.
//
// What this package must never do:
//   - be imported by library code: only mains (cmd/...) and tests; library code uses
//     the API-only subpackage spans;
//   - fail a process because telemetry cannot reach its collector: exports are
//     best-effort and their errors are logged, never returned to callers;
//   - change the wire format of trace context: that is W3C traceparent, fixed by the
//     protocol, whatever OTEL_PROPAGATORS says.
package telemetry
