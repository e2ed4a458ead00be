package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/shardmatch/shardmatch/internal/telemetry"
)

// Start never fails a command: a bad setting is logged, and the logger still carries
// trace ids.
func TestStartLogsSetupErrors(t *testing.T) {
	keepGlobal(t)
	t.Setenv(telemetry.EnvEndpoint, "http://127.0.0.1:4317")
	t.Setenv(telemetry.EnvProtocol, "grpc")
	var buf bytes.Buffer
	log, stop := telemetry.Start(context.Background(), telemetry.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer stop()
	if !strings.Contains(buf.String(), "tracing not started") || !strings.Contains(buf.String(), "grpc") {
		t.Fatalf("log: %s", buf.String())
	}
	if _, ok := log.Handler().(*telemetry.LogHandler); !ok {
		t.Fatalf("logger handler is %T", log.Handler())
	}
}

func TestStartTracesAndLogs(t *testing.T) {
	keepGlobal(t)
	t.Setenv(telemetry.EnvEndpoint, "")
	t.Setenv(telemetry.EnvTracesEndpoint, "")
	var buf bytes.Buffer
	log, stop := telemetry.Start(context.Background(), telemetry.Options{ServiceName: "svc",
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	ctx, span := otel.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	stop()
	want := "trace_id=" + span.SpanContext().TraceID().String()
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("log lacks %s:\n%s", want, buf.String())
	}
}
