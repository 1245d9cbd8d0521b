package telemetry_test

import (
	"context"
	"strings"
	"testing"

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
