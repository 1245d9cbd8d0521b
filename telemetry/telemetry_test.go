package telemetry_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lookupArgs struct {
	Topic string `json:"topic"`
}

// researchWorkflow researches with a tool call, then writes slowly: a first
// chunk, then an hour's wait for the next, so that a cancel finds it writing.
func researchWorkflow() *workflow.Workflow {
	lookup := tool.Func("lookup", "Looks a topic up.", func(_ context.Context, a lookupArgs) (string, error) {
		return "facts about " + a.Topic, nil
	})
	researcher := &agent.Agent{Name: "Researcher", Tools: []tool.Tool{lookup}, Model: &scripted.Model{ID: "gpt-test", Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{ID: "call_1", Name: "lookup", Arguments: []byte(`{"topic":"dragons"}`)}}},
		{Text: "dragons code"},
	}}}
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{ID: "gpt-test",
		Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour}}
	return &workflow.Workflow{Name: "Article", Steps: []workflow.Step{
		workflow.AgentStep("research", researcher, "research"),
		workflow.AgentStep("write", writer, "write"),
	}}
}

func newObserver(t *testing.T, content bool) (*telemetry.Observer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o, err := telemetry.New(telemetry.Config{TracerProvider: tp, CaptureContent: content, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	return o, exp
}

func attr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func byName(spans tracetest.SpanStubs) map[string]tracetest.SpanStub {
	m := make(map[string]tracetest.SpanStub)
	for _, s := range spans {
		m[s.Name] = s
	}
	return m
}

// TestCancelledWorkflowSpans runs a workflow whose first step calls a tool and
// whose second is cancelled while it streams, and checks the span tree, the
// conventions' attributes and the cancel's status and event.
func TestCancelledWorkflowSpans(t *testing.T) {
	o, exp := newObserver(t, false)
	wf := researchWorkflow()
	reg := &run.Registry{}
	wf.Registry = reg
	id := run.NewID()

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, Remote: true})
	ctx, tr := o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindWorkflow, Component: wf.WorkflowID(),
		Name: wf.Name, SessionID: "sess", Parent: parent})
	if got := trace.SpanContextFromContext(ctx); got.TraceID() != parent.TraceID() || !got.IsValid() {
		t.Fatalf("the run's context carries %v, want a span of trace %v", got, parent.TraceID())
	}
	x, err := wf.Start(ctx, "dragons", run.WithID(id), run.WithSessionID("sess"))
	if err != nil {
		t.Fatal(err)
	}
	tr.Follow(x)
	_ = x.Log.Follow(context.Background(), 0, func(ev *run.Event) bool {
		return !(ev.Event == run.EventRunContent && ev.StepName == "write")
	})
	o.CancelRequested(id, telemetry.SourceRequest)
	if _, err := reg.Cancel(context.Background(), id, "enough"); err != nil {
		t.Fatal(err)
	}
	x.Wait()
	o.Wait()

	spans := exp.GetSpans()
	m := byName(spans)
	for _, name := range []string{"invoke_workflow Article", "step research", "step write", "invoke_agent Researcher",
		"invoke_agent Writer", "chat gpt-test", "execute_tool lookup"} {
		if _, ok := m[name]; !ok {
			t.Errorf("no span %q in %d spans", name, len(spans))
		}
	}
	root := m["invoke_workflow Article"]
	if root.Parent.SpanID() != parent.SpanID() || root.SpanContext.TraceID() != parent.TraceID() {
		t.Errorf("root parent = %v, want the caller's %v", root.Parent.SpanID(), parent.SpanID())
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != parent.TraceID() {
			t.Errorf("span %q in trace %v, want %v", s.Name, s.SpanContext.TraceID(), parent.TraceID())
		}
	}
	wantAttrs := map[string]string{"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "Article",
		"gen_ai.conversation.id": "sess", "kern.run.id": id, "kern.replica": "r1", "error.type": "cancelled"}
	for k, want := range wantAttrs {
		if v, _ := attr(root, k); v.AsString() != want {
			t.Errorf("root %s = %q, want %q", k, v.AsString(), want)
		}
	}
	if root.Status.Code != codes.Error {
		t.Errorf("root status = %v, want Error", root.Status)
	}
	checkCancelEvent(t, root, "enough", telemetry.SourceRequest, true)

	write := m["step write"]
	if write.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Errorf("step write's parent is not the run")
	}
	if v, _ := attr(write, "error.type"); v.AsString() != "cancelled" {
		t.Errorf("step write error.type = %q", v.AsString())
	}
	checkCancelEvent(t, write, "enough", telemetry.SourceRequest, true)
	if w := m["invoke_agent Writer"]; w.Parent.SpanID() != write.SpanContext.SpanID() {
		t.Errorf("the writer's span is not under its step")
	}

	research := m["step research"]
	if research.Status.Code == codes.Error {
		t.Errorf("step research status = %v, want unset", research.Status)
	}
	researcher := m["invoke_agent Researcher"]
	if researcher.Parent.SpanID() != research.SpanContext.SpanID() {
		t.Errorf("the researcher's span is not under its step")
	}
	toolSpan := m["execute_tool lookup"]
	if toolSpan.Parent.SpanID() != researcher.SpanContext.SpanID() {
		t.Errorf("the tool span is not under the researcher")
	}
	for k, want := range map[string]string{"gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "call_1", "gen_ai.operation.name": "execute_tool"} {
		if v, _ := attr(toolSpan, k); v.AsString() != want {
			t.Errorf("tool %s = %q, want %q", k, v.AsString(), want)
		}
	}
	if _, ok := attr(toolSpan, "gen_ai.tool.call.arguments"); ok {
		t.Error("tool arguments recorded without CaptureContent")
	}
	chats := 0
	for _, s := range spans {
		if s.Name != "chat gpt-test" {
			continue
		}
		chats++
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("chat span kind = %v", s.SpanKind)
		}
		for k, want := range map[string]string{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "scripted", "gen_ai.request.model": "gpt-test"} {
			if v, _ := attr(s, k); v.AsString() != want {
				t.Errorf("chat %s = %q, want %q", k, v.AsString(), want)
			}
		}
		if s.Status.Code == codes.Error {
			continue // the writer's, cut short: no response
		}
		if v, _ := attr(s, "gen_ai.response.model"); v.AsString() != "gpt-test" {
			t.Errorf("chat gen_ai.response.model = %q, want the model's", v.AsString())
		}
		if v, _ := attr(s, "gen_ai.response.finish_reasons"); len(v.AsStringSlice()) != 1 ||
			(v.AsStringSlice()[0] != "tool_calls" && v.AsStringSlice()[0] != "stop") {
			t.Errorf("chat gen_ai.response.finish_reasons = %v, want [tool_calls] or [stop]", v.AsStringSlice())
		}
	}
	if chats != 3 { // two requests of the researcher, the writer's cut short
		t.Errorf("%d chat spans, want 3", chats)
	}
}

func checkCancelEvent(t *testing.T, s tracetest.SpanStub, reason, source string, latency bool) {
	t.Helper()
	for _, ev := range s.Events {
		if ev.Name != telemetry.EventCancelled {
			continue
		}
		got := map[string]attribute.Value{}
		for _, kv := range ev.Attributes {
			got[string(kv.Key)] = kv.Value
		}
		if got["kern.cancel.reason"].AsString() != reason || got["kern.cancel.source"].AsString() != source {
			t.Errorf("%s: cancel event %v, want reason %q source %q", s.Name, ev.Attributes, reason, source)
		}
		if _, ok := got["kern.cancel.latency_ms"]; ok != latency {
			t.Errorf("%s: cancel latency present %v, want %v", s.Name, ok, latency)
		}
		return
	}
	t.Errorf("%s: no %s event in %v", s.Name, telemetry.EventCancelled, s.Events)
}

// TestContentOptIn records content only when asked to.
func TestContentOptIn(t *testing.T) {
	o, exp := newObserver(t, true)
	a := &agent.Agent{Name: "Echo", Model: scripted.New("hi there")}
	id := run.NewID()
	ctx, tr := o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindAgent, Component: a.AgentID(), Name: a.Name})
	x, err := a.Start(ctx, "hello", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	tr.Follow(x)
	x.Wait()
	o.Wait()
	root := byName(exp.GetSpans())["invoke_agent Echo"]
	if v, _ := attr(root, "gen_ai.output.messages"); v.AsString() != "hi there" {
		t.Errorf("output = %q", v.AsString())
	}
	if v, _ := attr(root, "gen_ai.request.model"); v.AsString() != "scripted" {
		t.Errorf("request model = %q", v.AsString())
	}
	if root.Status.Code != codes.Unset {
		t.Errorf("status = %v", root.Status)
	}
}

// TestNilObserver: a nil Observer, telemetry off, does nothing.
func TestNilObserver(t *testing.T) {
	var o *telemetry.Observer
	ctx := context.Background()
	got, tr := o.Begin(ctx, telemetry.Run{ID: "x"})
	if got != ctx || tr != nil {
		t.Fatal("a nil observer changed the context or tracked the run")
	}
	tr.Follow(nil)
	tr.Fail(nil)
	o.CancelRequested("x", telemetry.SourceRequest)
	o.StreamOpened(ctx)(3)
	o.Wait()
}

// TestSetupOff: with nothing asked for, Setup makes no provider, no exporter
// goroutine and a nil Observer.
func TestSetupOff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := telemetry.Setup(context.Background(), telemetry.SetupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Observer != nil || p.Recent != nil || p.MetricsHandler() != nil {
		t.Errorf("Setup with nothing on made %+v", p)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSampledOut: a run whose span is sampled out is not followed, and exports
// nothing.
func TestSampledOut(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	o, err := telemetry.New(telemetry.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{Name: "Echo", Model: scripted.New("hi")}
	id := run.NewID()
	ctx, tr := o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindAgent, Component: a.AgentID(), Name: a.Name})
	x, err := a.Start(ctx, "hello", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	tr.Follow(x)
	x.Wait()
	o.Wait()
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported for a sampled-out run", n)
	}
}
