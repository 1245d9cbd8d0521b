package telemetry_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

// discard is an exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkRun runs kern's core workload (two agent steps of 20 chunks each)
// with telemetry off (a nil Observer, as the host holds without --otel) and on
// (spans made by the SDK and dropped by the exporter): the difference is what
// tracing costs a run.
func BenchmarkRun(b *testing.B) {
	text := strings.Repeat("word ", 20)
	step := func(name string) workflow.Step {
		return workflow.AgentStep(name, &agent.Agent{Name: name, Model: scripted.New(text)}, "")
	}
	wf := &workflow.Workflow{Name: "bench", Steps: []workflow.Step{step("one"), step("two")}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(discard{}))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	on, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("none", func(b *testing.B) { // no telemetry call at all
		b.ReportAllocs()
		for b.Loop() {
			x, err := wf.Start(context.Background(), "go")
			if err != nil {
				b.Fatal(err)
			}
			x.Wait()
		}
	})
	for _, c := range []struct {
		name string
		o    *telemetry.Observer
	}{{"off", nil}, {"on", on}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				id := run.NewID()
				ctx, tr := c.o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindWorkflow, Component: "bench", Name: "bench"})
				x, err := wf.Start(ctx, "go", run.WithID(id))
				if err != nil {
					b.Fatal(err)
				}
				tr.Follow(x)
				x.Wait()
			}
			c.o.Wait()
		})
	}
}

// BenchmarkCancelLatency is workflow's BenchmarkCancelLatency (stalled case)
// with telemetry off and on: the time from a cancel to the terminal event's
// arrival at the stream's reader, which tracing must not lengthen.
func BenchmarkCancelLatency(b *testing.B) {
	wf := &workflow.Workflow{Name: "w", Steps: []workflow.Step{
		workflow.AgentStep("s", &agent.Agent{Name: "a", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}}, ""),
	}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(discard{}))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	on, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	// As kern serve --otel exports: spans batched, exported by a goroutine of
	// the SDK's, not by the observer's.
	btp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	defer func() { _ = btp.Shutdown(context.Background()) }()
	batched, err := telemetry.New(telemetry.Config{TracerProvider: btp})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    *telemetry.Observer
	}{{"off", nil}, {"on", on}, {"batched", batched}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			for b.Loop() {
				id := run.NewID()
				ctx, tr := c.o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindWorkflow, Component: "w", Name: "w"})
				x, err := wf.Start(ctx, "go", run.WithID(id))
				if err != nil {
					b.Fatal(err)
				}
				tr.Follow(x)
				var cancelled time.Time
				for ev := range x.Stream {
					if ev.Event == run.EventRunStarted && cancelled.IsZero() {
						cancelled = time.Now()
						c.o.CancelRequested(id, telemetry.SourceRequest)
						go wf.CancelRun(context.Background(), id)
					}
					if ev.Event == run.EventWorkflowCancelled {
						lat = append(lat, time.Since(cancelled))
					}
				}
			}
			c.o.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
