package agentos

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// TestMCPServerPausedRun: an MCP call that starts a run which pauses for a person
// answers once the run paused, with its status PAUSED and what it waits for (not
// an error: the run waits, durably); the MCP client continues it with the
// continue_run tool (the decisions as the continue route's tools), and the call
// answers the run's end.
func TestMCPServerPausedRun(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var sent atomic.Int32
	e := newEnv(t, Config{Store: st, Agents: []*agent.Agent{mailer(&sent)}, SecurityKey: "s3cret"})
	cs := e.mcpClient(nil)
	ctx := t.Context()
	call, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "agent_mailer", Arguments: map[string]any{"message": "mail ada"}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		RunID  string              `json:"run_id"`
		Status run.Status          `json:"status"`
		Tools  []run.ToolExecution `json:"tools"`
	}
	if err := json.Unmarshal([]byte(textOf(t, call)), &out); err != nil {
		t.Fatal(err)
	}
	if call.IsError || out.Status != run.StatusPaused || len(out.Tools) != 1 || out.Tools[0].ToolName != "send_mail" {
		t.Fatalf("agent_mailer = %s (error %v)", textOf(t, call), call.IsError)
	}
	d := out.Tools[0]
	yes := true
	d.Confirmed = &yes
	cont, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "continue_run", Arguments: map[string]any{"run_id": out.RunID, "tools": []run.ToolExecution{d}}})
	if err != nil {
		t.Fatal(err)
	}
	var done struct {
		Status  run.Status `json:"status"`
		Content string     `json:"content"`
	}
	if err := json.Unmarshal([]byte(textOf(t, cont)), &done); err != nil {
		t.Fatalf("continue_run = %s: %v", textOf(t, cont), err)
	}
	if cont.IsError || done.Status != run.StatusCompleted || done.Content != "Sending. done: sent to ada" || sent.Load() != 1 {
		t.Fatalf("continue_run = %s (error %v), sent %d", textOf(t, cont), cont.IsError, sent.Load())
	}
	again, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "continue_run", Arguments: map[string]any{"run_id": out.RunID, "tools": []run.ToolExecution{d}}})
	if err != nil || !again.IsError {
		t.Fatalf("continue_run of a completed run = %v, %v; want a tool error", again, err)
	}
}

// TestMCPServerContinueCancelled: an MCP client's cancel of a continue_run call
// cancels the run it continued at once, not after the stream grace period.
func TestMCPServerContinueCancelled(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	entered := make(chan struct{}, 1)
	wf := &workflow.Workflow{Name: "Held", Steps: []workflow.Step{
		workflow.FuncStep("publish", func(ctx context.Context, _ *workflow.Input) (workflow.StepOutput, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return workflow.StepOutput{}, context.Cause(ctx)
		}).WithConfirmation("Publish?", workflow.OnRejectCancel),
	}}
	e := newEnv(t, Config{Store: st, Workflows: []*workflow.Workflow{wf}, SecurityKey: "s3cret", StreamGrace: time.Hour})
	cs := e.mcpClient(nil)
	call, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "workflow_held", Arguments: map[string]any{"message": "go"}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		RunID string           `json:"run_id"`
		Steps []map[string]any `json:"step_requirements"`
	}
	if err := json.Unmarshal([]byte(textOf(t, call)), &out); err != nil || len(out.Steps) != 1 {
		t.Fatalf("workflow_held = %s: %v", textOf(t, call), err)
	}
	out.Steps[0]["confirmed"] = true
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "continue_run", Arguments: map[string]any{"run_id": out.RunID, "step_requirements": out.Steps}})
		errc <- err
	}()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("continue_run = %v, want context.Canceled", err)
	}
	// Bounded only so that a failure ends: the grace period is an hour.
	wctx, stop := context.WithTimeout(t.Context(), 30*time.Second)
	defer stop()
	if got, err := e.srv.Host().Wait(wctx, out.RunID); err != nil || got != run.StatusCancelled {
		t.Fatalf("run %s = %s, %v; want CANCELLED", out.RunID, got, err)
	}
}
