package agentos

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// mcpClient connects the SDK's client to the server's /mcp; progress gets the
// progress notifications.
func (e *env) mcpClient(progress func(*sdk.ProgressNotificationParams)) *sdk.ClientSession {
	e.t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
			if progress != nil {
				progress(r.Params)
			}
		},
	})
	tr := &http.Transport{}
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer s3cret")
		return tr.RoundTrip(r)
	})}
	cs, err := c.Connect(e.t.Context(), &sdk.StreamableClientTransport{Endpoint: e.url("/mcp"), HTTPClient: hc}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cs.Close()
		tr.CloseIdleConnections()
	})
	return cs
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func textOf(t *testing.T, res *sdk.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("result has %d contents", len(res.Content))
	}
	return res.Content[0].(*sdk.TextContent).Text
}

func TestMCPServerRunsWorkflow(t *testing.T) {
	helper := &agent.Agent{Name: "Helper", Model: scripted.New("sure")}
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, Agents: []*agent.Agent{helper}, SecurityKey: "s3cret"})
	if code, _ := e.do("POST", "/mcp", "application/json", `{}`); code != http.StatusUnauthorized {
		t.Errorf("/mcp without the key: %d, want 401", code)
	}
	var mu sync.Mutex
	var events []string
	completed := make(chan struct{})
	cs := e.mcpClient(func(p *sdk.ProgressNotificationParams) {
		var ev struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal([]byte(p.Message), &ev); err != nil {
			t.Errorf("progress message %q: %v", p.Message, err)
		}
		mu.Lock()
		events = append(events, ev.Event)
		mu.Unlock()
		if ev.Event == string(run.EventWorkflowCompleted) {
			close(completed)
		}
	})
	ctx := t.Context()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if want := []string{"agent_helper", "cancel_run", "continue_run", "get_run", "list_runs", "workflow_quick"}; !slices.Equal(names, want) {
		t.Fatalf("tools = %v, want %v", names, want)
	}

	params := &sdk.CallToolParams{Name: "workflow_quick", Arguments: map[string]any{"message": "hi", "session_id": "s1"}}
	params.SetProgressToken("p1")
	call, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		RunID      string     `json:"run_id"`
		Status     run.Status `json:"status"`
		Content    string     `json:"content"`
		WorkflowID string     `json:"workflow_id"`
	}
	if err := json.Unmarshal([]byte(textOf(t, call)), &out); err != nil {
		t.Fatal(err)
	}
	if call.IsError || out.Status != run.StatusCompleted || out.Content != "hello world" || out.WorkflowID != "quick" {
		t.Errorf("workflow_quick = %+v (error %v)", out, call.IsError)
	}
	<-completed // notifications are handled apart from the call's answer, in order
	mu.Lock()
	if len(events) == 0 || events[0] != string(run.EventWorkflowStarted) || events[len(events)-1] != string(run.EventWorkflowCompleted) ||
		!slices.Contains(events, string(run.EventRunContent)) {
		t.Errorf("progress events = %v", events)
	}
	mu.Unlock()

	got, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "get_run", Arguments: map[string]any{"run_id": out.RunID}})
	if err != nil || got.IsError || !strings.Contains(textOf(t, got), `"status":"COMPLETED"`) {
		t.Errorf("get_run = %v, %v", got, err)
	}
	list, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_runs", Arguments: map[string]any{"workflow_id": "quick"}})
	if err != nil || list.IsError || !strings.Contains(textOf(t, list), out.RunID) {
		t.Errorf("list_runs = %v, %v", list, err)
	}
	missing, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "get_run", Arguments: map[string]any{"run_id": "nope"}})
	if err != nil || !missing.IsError {
		t.Errorf("get_run of an unknown run = %v, %v; want a tool error", missing, err)
	}
	empty, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "agent_helper", Arguments: map[string]any{"message": ""}})
	if err != nil || !empty.IsError {
		t.Errorf("agent_helper without a message = %v, %v; want a tool error", empty, err)
	}
	bg, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "agent_helper", Arguments: map[string]any{"message": "hi", "background": true}})
	if err != nil || bg.IsError || !strings.Contains(textOf(t, bg), `"status":"PENDING"`) {
		t.Errorf("background agent_helper = %v, %v", bg, err)
	}
}

// An MCP client's cancel of the call cancels the run it started.
func TestMCPServerCancelCancelsRun(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Slow")}, SecurityKey: "s3cret"})
	started := make(chan string, 1)
	cs := e.mcpClient(func(p *sdk.ProgressNotificationParams) {
		var ev run.Event
		if json.Unmarshal([]byte(p.Message), &ev) == nil && ev.Event == run.EventWorkflowStarted {
			started <- ev.RunID
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		params := &sdk.CallToolParams{Name: "workflow_slow", Arguments: map[string]any{"message": "go"}}
		params.SetProgressToken(1)
		_, err := cs.CallTool(ctx, params)
		errc <- err
	}()
	id := <-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("call = %v, want context.Canceled", err)
	}
	st, err := e.srv.Host().Wait(t.Context(), id)
	if err != nil || st != run.StatusCancelled {
		t.Fatalf("run %s = %s, %v; want CANCELLED", id, st, err)
	}
	// The run is also cancellable through the cancel_run tool (a no-op now).
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "cancel_run", Arguments: map[string]any{"run_id": id}})
	if err != nil || res.IsError || !strings.Contains(textOf(t, res), `"status":"CANCELLED"`) {
		t.Errorf("cancel_run = %v, %v", res, err)
	}
}

// Ids that need escaping reach the routes MCP tools call as they were given, and
// ids the HTTP API refuses are refused over MCP too.
func TestMCPServerIDs(t *testing.T) {
	helper := &agent.Agent{Name: "Helper", Model: scripted.New("sure")}
	e := newEnv(t, Config{Agents: []*agent.Agent{helper}, SecurityKey: "s3cret"})
	cs := e.mcpClient(nil)
	ctx := t.Context()
	call, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "agent_helper", Arguments: map[string]any{"message": "hi", "session_id": "my session%"}})
	if err != nil || call.IsError {
		t.Fatalf("agent_helper = %v, %v", call, err)
	}
	var out struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal([]byte(textOf(t, call)), &out); err != nil {
		t.Fatal(err)
	}
	for _, args := range []map[string]any{{"session_id": "my session%"}, {"session_id": "my session%", "agent_id": "helper"}} {
		list, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_runs", Arguments: args})
		if err != nil || list.IsError || !strings.Contains(textOf(t, list), out.RunID) {
			t.Errorf("list_runs %v = %v, %v; want run %s", args, list, err, out.RunID)
		}
	}
	long := strings.Repeat("x", MaxIDBytes+1)
	for _, args := range []map[string]any{
		{"message": "hi", "session_id": long},
		{"message": "hi", "user_id": "a\x00b"},
		{"message": "hi", "session_id": long, "background": true},
	} {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "agent_helper", Arguments: args})
		if err != nil || !res.IsError {
			t.Errorf("agent_helper with a bad id = %v, %v; want a tool error", res, err)
		}
	}
	for _, args := range []map[string]any{{"session_id": long}, {"session_id": "a\x00b", "agent_id": "helper"}} {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_runs", Arguments: args})
		if err != nil || !res.IsError || !strings.Contains(textOf(t, res), "session_id") {
			t.Errorf("list_runs with a bad session id = %v, %v; want a tool error naming it", res, err)
		}
	}
}
