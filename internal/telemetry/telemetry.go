// Package telemetry sets up the process's OpenTelemetry providers: traces
// exported as configured by the standard OTEL_* environment variables, and
// metrics exposed in the Prometheus text format for a /metrics endpoint.
//
// Trace export is off unless asked for: it is enabled when
// OTEL_TRACES_EXPORTER is set (otlp, console or none), or when an OTLP
// endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), in which case OTLP is used with the
// protocol from OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by default, or
// grpc). Sampling follows OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (parentbased_always_on by default): an unsampled span records nothing,
// so tracing costs in proportion to the sampled ratio. The resource
// follows OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
//
// Without export no span is recorded: the tracer provider only carries
// trace context, so that it keeps flowing through Kafka headers. A span
// with a parent is the parent's context, passed on unchanged (the next
// hop's spans join the parent's, which was exported); a root span gets new
// IDs, sampled as OTEL_TRACES_SAMPLER says.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the providers.
type Config struct {
	// ServiceName is the default service.name; OTEL_SERVICE_NAME overrides
	// it. Default "enricher".
	ServiceName string
	// ServiceVersion is the service.version attribute. Default: unset.
	ServiceVersion string
	// ConsoleWriter receives the spans of the console exporter
	// (OTEL_TRACES_EXPORTER=console), one JSON object per span. Default:
	// standard output. The caller closes it after Shutdown.
	ConsoleWriter io.Writer
}

// Providers holds the tracer and meter providers and the Prometheus
// registry behind MetricsHandler. Shutdown flushes and stops them.
type Providers struct {
	// TracerProvider creates spans; export as described in the package
	// doc (an SDK provider with an exporter, else one that only
	// propagates).
	TracerProvider trace.TracerProvider
	// MeterProvider's instruments appear on MetricsHandler.
	MeterProvider *sdkmetric.MeterProvider
	// Propagator is W3C trace context plus baggage.
	Propagator propagation.TextMapPropagator
	// TracesExporter names the trace exporter in use ("none", "otlp", "console").
	TracesExporter string

	registry *prometheus.Registry
	sdk      *sdktrace.TracerProvider // nil without export
}

// New builds the providers from cfg and the OTEL_* environment. It fails
// on an invalid OTEL_* setting (for example an unknown exporter name).
func New(ctx context.Context, cfg Config) (*Providers, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "enricher"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	// Later options win: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if !tracesRequested() && os.Getenv("OTEL_METRICS_EXEMPLAR_FILTER") == "" {
		// Without trace export an exemplar would name a trace nobody
		// keeps, and offering every measurement to the exemplar
		// reservoirs costs the data path.
		mopts = append(mopts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)

	prov := &Providers{
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		TracesExporter: "none",
		registry:       reg,
	}
	sampler, err := samplerFromEnv()
	if err != nil {
		_ = mp.Shutdown(ctx)
		return nil, err
	}
	if tracesRequested() {
		exp, err := spanExporter(ctx, cfg)
		if err != nil {
			_ = mp.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: trace exporter from OTEL_* environment: %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			prov.sdk = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp), sdktrace.WithSampler(sampler))
			prov.TracerProvider = prov.sdk
			prov.TracesExporter = os.Getenv("OTEL_TRACES_EXPORTER")
			if prov.TracesExporter == "" {
				prov.TracesExporter = "otlp"
			}
		}
	}
	if prov.sdk == nil {
		prov.TracerProvider = newPropagator(sampler)
	}
	return prov, nil
}

// spanExporter is the exporter OTEL_* asks for; the console exporter
// writes to cfg.ConsoleWriter when it is set.
func spanExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	if cfg.ConsoleWriter != nil && os.Getenv("OTEL_TRACES_EXPORTER") == "console" {
		return stdouttrace.New(stdouttrace.WithWriter(cfg.ConsoleWriter))
	}
	return autoexport.NewSpanExporter(ctx)
}

// tracesRequested reports whether the environment asks for trace export.
func tracesRequested() bool {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// SetGlobal installs the providers and propagator as the otel globals, for
// libraries that use them.
func (p *Providers) SetGlobal() {
	otel.SetTracerProvider(p.TracerProvider)
	otel.SetMeterProvider(p.MeterProvider)
	otel.SetTextMapPropagator(p.Propagator)
}

// MetricsHandler serves the metrics in the Prometheus exposition format.
func (p *Providers) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes pending spans and stops the providers.
func (p *Providers) Shutdown(ctx context.Context) error {
	var err error
	if p.sdk != nil {
		err = p.sdk.Shutdown(ctx)
	}
	return errors.Join(err, p.MeterProvider.Shutdown(ctx))
}
