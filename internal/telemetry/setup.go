package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The standard environment variables Setup reads itself. The SDK and the exporter
// read the rest (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*,
// OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, ...).
const (
	EnvSDKDisabled        = "OTEL_SDK_DISABLED"
	EnvEndpoint           = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint     = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol           = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol     = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvTracesExporter     = "OTEL_TRACES_EXPORTER"
	EnvServiceName        = "OTEL_SERVICE_NAME"
	EnvResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
)

// defaultShutdownDeadline bounds the final flush when shutdown's ctx has no deadline.
const defaultShutdownDeadline = 5 * time.Second

// ErrConfig marks an OTEL_* setting Setup cannot honour (an unsupported exporter or
// protocol, a malformed endpoint).
var ErrConfig = errors.New("telemetry: invalid configuration")

// Options configure Setup.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME or service.name in
	// OTEL_RESOURCE_ATTRIBUTES says otherwise (the environment wins).
	ServiceName string
	// ServiceInstance is service.instance.id (e.g. the node id); empty leaves it out.
	ServiceInstance string
	// Logger receives what Setup did and OpenTelemetry's own errors (a failed export,
	// a bad sampler setting). Nil discards.
	Logger *slog.Logger
}

// Setup builds a TracerProvider from the standard environment and makes it the
// global one, with the W3C TraceContext (and Baggage) propagator:
//
//   - OTEL_SDK_DISABLED=true: no provider is installed; spans stay no-ops, but
//     incoming trace context is still passed on;
//   - OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: spans
//     are batched and exported over OTLP/HTTP (http/protobuf or http/json;
//     OTEL_TRACES_EXPORTER may be unset, "otlp" or "none");
//   - otherwise spans are recorded but exported nowhere: trace ids still reach the
//     logs and the messages, at the cost of the spans' allocation.
//
// The sampler follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default
// parentbased_always_on); the resource takes OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES over Options.
//
// shutdown flushes the spans still buffered (bounded by its ctx), stops the provider
// and puts back the global provider that was there before Setup. Call it once at exit.
func Setup(ctx context.Context, o Options) (shutdown func(context.Context) error, err error) {
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "telemetry")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		lg.Warn("opentelemetry error", "err", err)
	}))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if v := strings.TrimSpace(os.Getenv(EnvSDKDisabled)); strings.EqualFold(v, "true") {
		lg.Info("tracing disabled", "env", EnvSDKDisabled)
		return func(context.Context) error { return nil }, nil
	}
	exp, target, err := newExporter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, o)
	if err != nil {
		// A partial resource (a malformed OTEL_RESOURCE_ATTRIBUTES entry) is still
		// usable: say so and go on with it.
		lg.Warn("telemetry resource incomplete", "err", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	if target == "" {
		lg.Info("tracing on; no exporter configured (set " + EnvEndpoint + " to export)")
	} else {
		lg.Info("tracing on; exporting over OTLP/HTTP", "endpoint", target)
	}
	return func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, defaultShutdownDeadline)
			defer cancel()
		}
		err := tp.Shutdown(ctx)
		if otel.GetTracerProvider() == tp {
			otel.SetTracerProvider(prev)
		}
		if err != nil {
			return fmt.Errorf("telemetry: shutdown: %w", err)
		}
		return nil
	}, nil
}

// newExporter returns the OTLP/HTTP exporter the environment asks for, and where it
// sends, or nil when none is configured.
func newExporter(ctx context.Context) (sdktrace.SpanExporter, string, error) {
	switch kind := strings.TrimSpace(os.Getenv(EnvTracesExporter)); kind {
	case "", "otlp":
	case "none":
		return nil, "", nil
	default:
		return nil, "", fmt.Errorf("%w: %s=%q: only \"otlp\" and \"none\" are supported", ErrConfig, EnvTracesExporter, kind)
	}
	target := os.Getenv(EnvTracesEndpoint)
	if target == "" {
		target = os.Getenv(EnvEndpoint)
	}
	if strings.TrimSpace(target) == "" {
		return nil, "", nil
	}
	for _, env := range []string{EnvTracesProtocol, EnvProtocol} {
		p := strings.TrimSpace(os.Getenv(env))
		if p == "" {
			continue
		}
		if p != "http/protobuf" && p != "http/json" {
			return nil, "", fmt.Errorf("%w: %s=%q: this build exports OTLP over HTTP only (http/protobuf, http/json); point it at the collector's HTTP port (4318)", ErrConfig, env, p)
		}
		break // the traces-specific setting wins
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%w: OTLP/HTTP exporter for %q: %w", ErrConfig, target, err)
	}
	return exp, target, nil
}

// newResource describes this process: Options first, then the environment over it.
func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	if o.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", o.ServiceName))
	}
	if o.ServiceInstance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", o.ServiceInstance))
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME
	)
	if res == nil {
		res = resource.Empty()
	}
	return res, err
}
