package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	"github.com/kern-dev/kern/telemetry"
)

// observeOptions are the flags of what kern serve and kern run tell an operator:
// traces, metrics, logs.
type observeOptions struct {
	otel          bool
	metrics       bool
	metricsPublic bool
	traces        int
	printTrace    bool
	logFormat     string
	logLevel      string
}

const otelHelp = "export OpenTelemetry spans (GenAI conventions) over OTLP/HTTP; the standard OTEL_* variables configure it " +
	"(OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318; OTEL_EXPORTER_OTLP_HEADERS; OTEL_SERVICE_NAME, default kern; " +
	"OTEL_TRACES_SAMPLER; OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true records message content)"

// addLogFlags adds --log-format and --log-level.
func addLogFlags(cmd *cobra.Command, o *observeOptions, level string) {
	f := cmd.Flags()
	f.StringVar(&o.logFormat, "log-format", "text", "log line format on stderr: text (for a terminal) or json (one JSON object a line)")
	f.StringVar(&o.logLevel, "log-level", level, "least level logged: debug, info, warn or error")
}

// addServeObserveFlags adds the telemetry flags of kern serve.
func addServeObserveFlags(cmd *cobra.Command, o *observeOptions) {
	f := cmd.Flags()
	f.BoolVar(&o.otel, "otel", false, otelHelp)
	f.BoolVar(&o.metrics, "metrics", false, "serve metrics at GET /metrics in the Prometheus text format (runs, cancel latency, streams, GenAI client metrics, Go runtime)")
	f.BoolVar(&o.metricsPublic, "metrics-public", false, "serve GET /metrics without the security key (for a scraper inside a trusted network)")
	f.IntVar(&o.traces, "keep-traces", 0, "keep the spans of the last N traces in memory, served at GET /runs/{run_id}/trace and GET /traces (0: none)")
	addLogFlags(cmd, o, "info")
}

// logger returns the logger the flags ask for, writing to w, with the trace and
// span ids of the run a line is about.
func (o observeOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is none of debug, info, warn, error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(o.logFormat) {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is neither text nor json", o.logFormat)
	}
	return slog.New(telemetry.LogHandler(h)), nil
}

// setup makes the telemetry the flags ask for (none: a nil observer).
func (o observeOptions) setup(ctx context.Context, replica string) (*telemetry.Providers, error) {
	return o.setupLogged(ctx, replica, nil)
}

// setupLogged is setup, the SDK's errors (a collector unreachable) logged to log
// when it is not nil rather than printed by the standard logger.
func (o observeOptions) setupLogged(ctx context.Context, replica string, log *slog.Logger) (*telemetry.Providers, error) {
	if log != nil && o.otel {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("telemetry: OpenTelemetry SDK error", "err", err)
		}))
	}
	keep := o.traces
	if o.printTrace {
		keep = max(keep, 1)
	}
	return telemetry.Setup(ctx, telemetry.SetupConfig{Traces: o.otel, Metrics: o.metrics, Recent: keep, Replica: replica})
}

// shutdownTelemetry exports what is left, within a bound: an unreachable
// collector does not hold the process.
func shutdownTelemetry(p *telemetry.Providers) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}

// printTrace writes the run's span tree with durations.
func printTrace(w io.Writer, p *telemetry.Providers, runID string) {
	if p.Recent == nil {
		return
	}
	tid, spans, ok := p.Recent.Run(runID)
	if !ok {
		fmt.Fprintln(w, "trace: no span kept for run", runID)
		return
	}
	fmt.Fprintln(w, "trace", tid)
	var walk func(s *telemetry.Span, depth int)
	walk = func(s *telemetry.Span, depth int) {
		status := ""
		if s.Status == "Error" {
			status = "  [" + s.StatusMessage + "]"
		}
		fmt.Fprintf(w, "%s%-*s %10.1f ms%s\n", strings.Repeat("  ", depth), 48-2*depth, s.Name, s.DurationMS, status)
		for _, c := range s.Children {
			walk(c, depth+1)
		}
	}
	for _, s := range spans {
		walk(s, 0)
	}
}
