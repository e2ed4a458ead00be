package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/telemetry"
)

// otlpSink is a stand-in collector: it keeps every OTLP/HTTP trace export it gets.
type otlpSink struct {
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	bad  []string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		s.bad = append(s.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		http.Error(w, "unexpected", http.StatusNotFound)
		return
	}
	req := new(coltracepb.ExportTraceServiceRequest)
	if err := proto.Unmarshal(body, req); err != nil {
		s.bad = append(s.bad, "undecodable body: "+err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.reqs = append(s.reqs, req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// spans returns service.name → span names over every export received.
func (s *otlpSink) spans() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, req := range s.reqs {
		for _, rs := range req.GetResourceSpans() {
			svc := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					svc = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					out[svc] = append(out[svc], sp.GetName())
				}
			}
		}
	}
	return out
}

// keepGlobal puts the global provider back after a test that calls Setup.
func keepGlobal(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
}

// With an endpoint configured, spans reach the collector by the time shutdown
// returns, under the service name the environment gives.
func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	keepGlobal(t)
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	t.Setenv(telemetry.EnvEndpoint, srv.URL)
	t.Setenv(telemetry.EnvServiceName, "from-env")
	t.Setenv(telemetry.EnvResourceAttributes, "deployment.environment=test")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000") // only the shutdown flush can send it

	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "from-options", ServiceInstance: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
		t.Fatalf("global provider is %T, want the SDK's", otel.GetTracerProvider())
	}
	_, span := otel.Tracer("test").Start(context.Background(), "unit-of-work")
	if !span.SpanContext().IsValid() || !span.IsRecording() {
		t.Fatal("span is not recording")
	}
	span.End()
	if got := sink.spans(); len(got) != 0 {
		t.Fatalf("exported before shutdown: %v", got)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.spans()
	if names := got["from-env"]; len(names) != 1 || names[0] != "unit-of-work" {
		t.Fatalf("exported %v (bad requests %v), want unit-of-work under service from-env", got, sink.bad)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("shutdown left the SDK provider global")
	}
}

func TestSetupWithoutEndpointRecordsButExportsNothing(t *testing.T) {
	keepGlobal(t)
	t.Setenv(telemetry.EnvEndpoint, "")
	t.Setenv(telemetry.EnvTracesEndpoint, "")
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	_, span := otel.Tracer("test").Start(context.Background(), "x")
	defer span.End()
	if !span.SpanContext().IsValid() {
		t.Fatal("no trace id without an exporter: logs would carry none")
	}
}

func TestSetupDisabled(t *testing.T) {
	keepGlobal(t)
	t.Setenv(telemetry.EnvSDKDisabled, "true")
	t.Setenv(telemetry.EnvEndpoint, "http://127.0.0.1:1")
	before := otel.GetTracerProvider()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before {
		t.Fatalf("OTEL_SDK_DISABLED=true still installed %T", otel.GetTracerProvider())
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Settings this build cannot honour are refused by name rather than silently
// exporting nowhere.
func TestSetupRefusesUnsupportedSettings(t *testing.T) {
	for _, tc := range []struct{ env, val string }{
		{telemetry.EnvProtocol, "grpc"},
		{telemetry.EnvTracesProtocol, "grpc"},
		{telemetry.EnvTracesExporter, "zipkin"},
	} {
		t.Run(tc.env+"="+tc.val, func(t *testing.T) {
			keepGlobal(t)
			before := otel.GetTracerProvider()
			t.Setenv(telemetry.EnvEndpoint, "http://127.0.0.1:4317")
			t.Setenv(tc.env, tc.val)
			_, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "svc"})
			if !errors.Is(err, telemetry.ErrConfig) {
				t.Fatalf("Setup = %v, want ErrConfig", err)
			}
			if otel.GetTracerProvider() != before {
				t.Fatal("a failed Setup changed the global provider")
			}
		})
	}
	// The traces-specific protocol wins over the general one.
	keepGlobal(t)
	t.Setenv(telemetry.EnvEndpoint, "http://127.0.0.1:4318")
	t.Setenv(telemetry.EnvProtocol, "grpc")
	t.Setenv(telemetry.EnvTracesProtocol, "http/protobuf")
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{})
	if err != nil {
		t.Fatalf("Setup with %s=http/protobuf = %v", telemetry.EnvTracesProtocol, err)
	}
	_ = shutdown(context.Background())
}
