package main

import (
	"context"
	"log/slog"

	"github.com/shardmatch/shardmatch/internal/telemetry"
)

// startTelemetry turns tracing on for a long-running command (serve, dev) from the
// standard OTEL_* environment (docs/operations.md, "Tracing"). It returns log wrapped
// so that records logged with a traced context carry trace_id and span_id, and stop,
// which flushes the last spans: defer it. A setting it cannot honour is logged and
// the command runs untraced.
func startTelemetry(log *slog.Logger, service, instance string) (_ *slog.Logger, stop func()) {
	return telemetry.Start(context.Background(), telemetry.Options{ServiceName: service, ServiceInstance: instance, Logger: log})
}
