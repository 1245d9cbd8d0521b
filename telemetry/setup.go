package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// EnvCaptureContent is the environment variable that, set to true, records
// message content in spans (Setup's CaptureContent), as OpenTelemetry's GenAI
// instrumentations read it.
const EnvCaptureContent = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

// SetupConfig says what Setup turns on. The standard OTEL_* environment
// variables configure the rest: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and OTEL_EXPORTER_OTLP_HEADERS where spans
// go, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES the resource,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG the sampling.
type SetupConfig struct {
	// Traces exports spans over OTLP/HTTP (protobuf).
	Traces bool
	// Metrics makes metrics, served in the Prometheus text format by
	// Providers.MetricsHandler, with the Go runtime's and the process's.
	Metrics bool
	// Recent keeps the spans of the last Recent traces in memory, read with
	// Providers.Recent (a server's GET /runs/{run_id}/trace); 0 keeps none.
	Recent int
	// Replica names this process in kern.replica.
	Replica string
	// CaptureContent records message content (see Config); also turned on by
	// EnvCaptureContent=true.
	CaptureContent bool
}

// Providers are the OpenTelemetry providers Setup made, and the Observer that
// sends to them. Shut them down once the runs have ended.
type Providers struct {
	// Observer is nil when Setup turned nothing on.
	Observer *Observer
	// Recent holds the spans of recent traces; nil unless SetupConfig.Recent.
	Recent *SpanStore

	tp       *sdktrace.TracerProvider
	mp       *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// Setup makes the providers cfg asks for and an Observer sending to them; with
// nothing asked for, no provider and a nil Observer: telemetry off, and free.
func Setup(ctx context.Context, cfg SetupConfig) (*Providers, error) {
	p := &Providers{}
	if !cfg.Traces && !cfg.Metrics && cfg.Recent <= 0 {
		return p, nil
	}
	if v, err := strconv.ParseBool(os.Getenv(EnvCaptureContent)); err == nil && v {
		cfg.CaptureContent = true
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "kern")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	oc := Config{Replica: cfg.Replica, CaptureContent: cfg.CaptureContent}
	if cfg.Traces || cfg.Recent > 0 {
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if cfg.Traces {
			exp, err := otlptracehttp.New(ctx)
			if err != nil {
				return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		if cfg.Recent > 0 {
			p.Recent = NewSpanStore(cfg.Recent)
			opts = append(opts, sdktrace.WithSpanProcessor(p.Recent))
		}
		p.tp = sdktrace.NewTracerProvider(opts...)
		oc.TracerProvider = p.tp
	}
	if cfg.Metrics {
		p.registry = prometheus.NewRegistry()
		if err := p.registry.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := p.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(p.registry))
		if err != nil {
			return nil, fmt.Errorf("telemetry: Prometheus exporter: %w", err)
		}
		p.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
		oc.MeterProvider = p.mp
	}
	if p.Observer, err = New(oc); err != nil {
		return nil, errors.Join(err, p.Shutdown(ctx))
	}
	return p, nil
}

// MetricsHandler serves the metrics in the Prometheus text format; nil without
// metrics.
func (p *Providers) MetricsHandler() http.Handler {
	if p.registry == nil {
		return nil
	}
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// Shutdown waits for the Observer's spans to end, exports what is left and
// stops the providers. Call it once the runs have ended (after the host's
// Shutdown).
func (p *Providers) Shutdown(ctx context.Context) error {
	p.Observer.Wait()
	var errs []error
	if p.tp != nil {
		errs = append(errs, p.tp.Shutdown(ctx))
	}
	if p.mp != nil {
		errs = append(errs, p.mp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
