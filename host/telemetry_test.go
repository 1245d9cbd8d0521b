package host

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

func tracing(t *testing.T) (*telemetry.Observer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	return o, exp
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var callerSpan = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xca, 0x11}, SpanID: trace.SpanID{0xe4},
	TraceFlags: trace.FlagsSampled, Remote: true})

// rootSpan returns the span of the run id among the exported ones.
func rootSpan(t *testing.T, exp *tracetest.InMemoryExporter, id string) tracetest.SpanStub {
	t.Helper()
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			if kv.Key == "kern.run.id" && kv.Value.AsString() == id && strings.HasPrefix(s.Name, "invoke_workflow ") {
				return s
			}
		}
	}
	t.Fatalf("no span of run %s in %d spans", id, len(exp.GetSpans()))
	return tracetest.SpanStub{}
}

// TestTraceStartedRun: a run started with the caller's span is its child, its
// stored metadata holds its own span, and a cancel through the host is told as
// one requested, with its latency.
func TestTraceStartedRun(t *testing.T) {
	obs, exp := tracing(t)
	st := openSQLite(t)
	h := startHost(t, st, Options{Workflows: []*workflow.Workflow{slowWorkflow("Slow")}, Telemetry: obs})
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "slow", Input: "go", Parent: callerSpan})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.Exec().Log.Follow(ctx, 0, func(ev *run.Event) bool { return ev.Event != run.EventRunContent })
	if st, _, err := h.Cancel(ctx, r.ID(), "stop", true); err != nil || st != run.StatusCancelled {
		t.Fatalf("cancel: %s, %v", st, err)
	}
	obs.Wait()
	root := rootSpan(t, exp, r.ID())
	if root.Parent.SpanID() != callerSpan.SpanID() || root.SpanContext.TraceID() != callerSpan.TraceID() {
		t.Errorf("the run's span is not the caller's child: parent %v", root.Parent)
	}
	var source string
	for _, ev := range root.Events {
		for _, kv := range ev.Attributes {
			if kv.Key == "kern.cancel.source" {
				source = kv.Value.AsString()
			}
		}
	}
	if source != telemetry.SourceRequest {
		t.Errorf("cancel source %q, want %q", source, telemetry.SourceRequest)
	}
	rec, err := st.GetRun(ctx, r.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := ParseTraceparent(rec.Output.Metadata[MetadataTraceparent]); got.SpanID() != root.SpanContext.SpanID() {
		t.Errorf("stored traceparent %q, want the run's span %v", rec.Output.Metadata[MetadataTraceparent], root.SpanContext.SpanID())
	}
}

// TestTraceBackgroundRun: a background run queued in the store keeps the
// caller's span as its parent.
func TestTraceBackgroundRun(t *testing.T) {
	obs, exp := tracing(t)
	h := startHost(t, openSQLite(t), Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, Telemetry: obs})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "quick", Input: "go", Parent: callerSpan})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.Wait(ctx, out.RunID); err != nil || st != run.StatusCompleted {
		t.Fatalf("background run: %s, %v", st, err)
	}
	obs.Wait()
	root := rootSpan(t, exp, out.RunID)
	if root.Parent.SpanID() != callerSpan.SpanID() || root.SpanContext.TraceID() != callerSpan.TraceID() {
		t.Errorf("the background run's span is not the caller's child: parent %v", root.Parent)
	}
}

// TestTraceTakenOverRun: a run another process left behind, taken over here,
// links its span to the span of its first part, kept in its metadata.
func TestTraceTakenOverRun(t *testing.T) {
	obs, exp := tracing(t)
	st := openSQLite(t)
	ctx := context.Background()
	wf := &workflow.Workflow{Name: "Durable", Steps: []workflow.Step{
		workflow.FuncStep("one", func(context.Context, *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: "one."}, nil
		}),
		workflow.FuncStep("two", func(_ context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: in.Previous + "two."}, nil
		}),
	}}
	one := run.StepResult{StepID: "one", StepName: "one", Content: "one.", Status: run.StatusCompleted}
	id, past := run.NewID(), time.Now().Add(-time.Minute)
	left := &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: "durable", Status: run.StatusRunning,
		Input: "go", Output: run.Output{RunID: id, WorkflowID: "durable", StepResults: []run.StepResult{one},
			Metadata: map[string]string{MetadataTraceparent: Traceparent(callerSpan)}},
		Replica: "dead", LeaseUntil: past, CreatedAt: past, UpdatedAt: past}
	if err := st.CreateRun(ctx, left); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	for i, typ := range []run.EventType{run.EventWorkflowStarted, run.EventStepStarted, run.EventStepCompleted} {
		evs = append(evs, store.Event{RunID: id, Index: i, Type: typ, CreatedAt: past,
			Data: []byte(fmt.Sprintf(`{"event":%q,"run_id":%q,"created_at":%d}`, typ, id, past.Unix()))})
	}
	if err := st.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{wf}, Telemetry: obs}, sig)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(ctx)
	<-sig.recovered
	// The run may have ended already: it is waited for wherever it is.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if st, err := h.Wait(wctx, id); err != nil || st != run.StatusCompleted {
		t.Fatalf("taken-over run ended %s, %v", st, err)
	}
	obs.Wait()
	var root *tracetest.SpanStub
	spans := exp.GetSpans()
	for i, s := range spans {
		if s.Name == "invoke_workflow Durable" {
			root = &spans[i]
		}
	}
	if root == nil {
		t.Fatal("no span of the taken-over run")
	}
	if len(root.Links) != 1 || root.Links[0].SpanContext.SpanID() != callerSpan.SpanID() {
		t.Errorf("links %v, want one to the first part's span %v", root.Links, callerSpan.SpanID())
	}
	taken := false
	for _, kv := range root.Attributes {
		taken = taken || (kv.Key == "kern.run.taken_over" && kv.Value.AsBool())
	}
	if !taken {
		t.Error("no kern.run.taken_over on the taken-over run's span")
	}
}

// TestStoreMetrics: with metrics on, the host's recorder reports its writes of
// events, and the queue its depth.
func TestStoreMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	obs, err := telemetry.New(telemetry.Config{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, openSQLite(t), Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, Telemetry: obs})
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "quick", Input: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := r.Wait(context.Background()); out.Status != run.StatusCompleted {
		t.Fatalf("run %s", out.Status)
	}
	obs.Wait() // the observer counts the run's end once it has read its terminal event
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var events int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			seen[m.Name] = true
			if h, ok := m.Data.(metricdata.Histogram[int64]); ok && m.Name == "kern.store.write.batch_size" {
				for _, p := range h.DataPoints {
					events += p.Sum
				}
			}
		}
	}
	for _, name := range []string{"kern.store.write.duration", "kern.store.write.batch_size", "kern.queue.depth", "kern.runs.ended"} {
		if !seen[name] {
			t.Errorf("no metric %s", name)
		}
	}
	if n := int64(r.Exec().Log.Len()); events != n {
		t.Errorf("%d events written by the batches measured, want the run's %d", events, n)
	}
}
