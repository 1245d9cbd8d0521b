package agentos_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/host"
	kmodel "github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes the protobuf export
// requests the SDK's exporter sends, as a collector does.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) received() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracepb.Span(nil), o.spans...)
}

type lookupArgs struct {
	Topic string `json:"topic"`
}

func articleWorkflow() *workflow.Workflow {
	lookup := tool.Func("lookup", "Looks a topic up.", func(_ context.Context, a lookupArgs) (string, error) {
		return "facts about " + a.Topic, nil
	})
	researcher := &agent.Agent{Name: "Researcher", Tools: []tool.Tool{lookup}, Model: &scripted.Model{ID: "gpt-test", Turns: []scripted.Turn{
		{ToolCalls: []kmodel.ToolCall{{ID: "call_1", Name: "lookup", Arguments: []byte(`{"topic":"dragons"}`)}}},
		{Text: "dragons code"},
	}}}
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{ID: "gpt-test",
		Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour}}
	return &workflow.Workflow{Name: "Article", Steps: []workflow.Step{
		workflow.AgentStep("research", researcher, "research"),
		workflow.AgentStep("write", writer, "write"),
	}}
}

func strAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestTelemetryEndToEnd runs a traced, measured server: a background run asked
// for with a traceparent calls a tool, is cancelled while it writes, and the
// OTLP receiver gets its span tree in the caller's trace with the cancel event;
// /metrics, parsed as Prometheus text, counts it; GET /runs/{id}/trace shows it.
func TestTelemetryEndToEnd(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "kern-test")
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.SetupConfig{Traces: true, Metrics: true, Recent: 10, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	quick := &workflow.Workflow{Name: "Quick", Steps: []workflow.Step{
		workflow.AgentStep("say", &agent.Agent{Name: "Sayer", Model: scripted.New("hello world")}, ""),
	}}
	h, err := host.New(nil, host.Options{Workflows: []*workflow.Workflow{articleWorkflow(), quick}, Telemetry: tel.Observer})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := agentos.New(agentos.Config{Host: h, SecurityKey: "key", Metrics: tel.MetricsHandler(), Traces: tel.Recent})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	defer api.Close()
	call := func(method, path string, body string, header map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer key")
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := api.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := call("POST", "/workflows/article/runs", "message=dragons&background=true",
		map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"})
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST runs: %d %s", resp.StatusCode, b)
	}
	var accepted struct {
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&accepted); err != nil {
		t.Fatal(err)
	}
	id := accepted.RunID
	r := h.Lookup(id) // held from its 202 on
	if r == nil {
		t.Fatal("the background run is not held by the host")
	}
	<-r.Started()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = r.Exec().Log.Follow(wctx, 0, func(ev *run.Event) bool {
		return !(ev.Event == run.EventRunContent && ev.StepName == "write")
	})
	if resp := call("POST", "/runs/"+id+"/cancel", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	// A streamed run, read to its end.
	streamed := call("POST", "/workflows/quick/runs", "message=hi", nil)
	if b, err := io.ReadAll(streamed.Body); err != nil || !strings.Contains(string(b), "WorkflowCompleted") {
		t.Fatalf("streamed run: %v %s", err, b)
	}
	tel.Observer.Wait()

	// /metrics, behind the key, in the Prometheus text format.
	if resp := call("GET", "/metrics", "", map[string]string{"Authorization": ""}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the key: %d, want 401", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(call("GET", "/metrics", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kern_runs_started_total", "kern_runs_ended_total", "kern_runs_live", "kern_cancel_latency_seconds",
		"kern_queue_depth", "kern_queue_wait_seconds", "kern_streams_open", "kern_events_delivered_total",
		"gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("no metric family %s", name)
		}
	}
	if v := counter(families["kern_runs_ended_total"], "kern_run_status", "CANCELLED"); v != 1 {
		t.Errorf("kern_runs_ended_total{CANCELLED} = %v, want 1", v)
	}
	if v := counter(families["kern_runs_started_total"], "kern_component", "article"); v != 1 {
		t.Errorf("kern_runs_started_total{article} = %v, want 1", v)
	}
	if v := counter(families["kern_events_delivered_total"], "", ""); v < 5 {
		t.Errorf("kern_events_delivered_total = %v, want the streamed run's events", v)
	}
	if f := families["kern_streams_open"]; f == nil || len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != 0 {
		t.Errorf("kern_streams_open = %v, want 0 once the stream ended", f)
	}

	// GET /runs/{id}/trace: the spans kept in memory, nested.
	var tr struct {
		TraceID string            `json:"trace_id"`
		Spans   []*telemetry.Span `json:"spans"`
	}
	if err := json.NewDecoder(call("GET", "/runs/"+id+"/trace", "", nil).Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if tr.TraceID != traceID || len(tr.Spans) != 1 || tr.Spans[0].Name != "invoke_workflow Article" || len(tr.Spans[0].Children) != 2 {
		t.Errorf("GET trace: %s, %d roots", tr.TraceID, len(tr.Spans))
	}
	if resp := call("GET", "/runs/unknown/trace", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("trace of an unknown run: %d", resp.StatusCode)
	}
	// Agno's shapes: GET /traces pages summaries, GET /traces/{id} a tree.
	var list struct {
		Data []telemetry.TraceSummary `json:"data"`
		Meta struct {
			TotalCount int `json:"total_count"`
		} `json:"meta"`
	}
	if err := json.NewDecoder(call("GET", "/traces?limit=5", "", nil).Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(call("GET", "/traces?run_id="+id, "", nil).Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Meta.TotalCount != 1 || len(list.Data) != 1 || list.Data[0].TraceID != traceID || list.Data[0].RunID != id ||
		list.Data[0].Status != "ERROR" || list.Data[0].Name != "invoke_workflow Article" {
		t.Errorf("GET /traces: %+v", list)
	}
	var detail telemetry.TraceDetail
	if err := json.NewDecoder(call("GET", "/traces/"+traceID, "", nil).Body).Decode(&detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Tree) != 1 || detail.Tree[0].Type != "WORKFLOW" || len(detail.Tree[0].Spans) != 2 || detail.Tree[0].Spans[0].Type != "STEP" {
		t.Errorf("GET /traces/{id}: %+v", detail)
	}
	if resp := call("GET", "/traces?limit=0", "", nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("GET /traces?limit=0: %d, want 422", resp.StatusCode)
	}

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(ctx); err != nil { // the batch goes out
		t.Fatal(err)
	}
	spans := recv.received()
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		if hexID(s.TraceId) == traceID { // the background run's; the streamed run has a trace of its own
			byName[s.Name] = s
		}
	}
	root := byName["invoke_workflow Article"]
	if root == nil {
		t.Fatalf("no workflow span among %d received", len(spans))
	}
	if hexID(root.ParentSpanId) != parentID {
		t.Errorf("root's parent %s, want %s", hexID(root.ParentSpanId), parentID)
	}
	if strAttr(root, "error.type") != "cancelled" || root.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("root: error.type %q, status %v", strAttr(root, "error.type"), root.Status)
	}
	found := false
	for _, ev := range root.Events {
		if ev.Name == telemetry.EventCancelled {
			found = true
		}
	}
	if !found {
		t.Error("no cancel event on the root span")
	}
	for _, name := range []string{"step research", "step write", "invoke_agent Researcher", "execute_tool lookup", "chat gpt-test"} {
		if byName[name] == nil {
			t.Errorf("no span %q received", name)
		}
	}
	if s := byName["execute_tool lookup"]; s != nil && strAttr(s, "gen_ai.tool.call.id") != "call_1" {
		t.Errorf("tool span call id %q", strAttr(s, "gen_ai.tool.call.id"))
	}
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// counter sums the counter's samples, those whose label has the value when label is set.
func counter(f *dto.MetricFamily, label, value string) float64 {
	if f == nil {
		return -1
	}
	var sum float64
	for _, m := range f.Metric {
		if label != "" {
			ok := false
			for _, l := range m.Label {
				ok = ok || (l.GetName() == label && l.GetValue() == value)
			}
			if !ok {
				continue
			}
		}
		sum += m.GetCounter().GetValue()
	}
	return sum
}
