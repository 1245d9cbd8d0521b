package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// lead returns an agent whose model calls the tool named name, then answers "done".
func lead(name string, tools ...tool.Tool) *agent.Agent {
	return &agent.Agent{Name: "Lead", Tools: tools, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: name, Arguments: json.RawMessage(`{"input":"dragons"}`)}}},
		{Text: "done"},
	}}}
}

// An agent given as a tool to an agent inside a workflow step: its events carry the
// step and the workflow's run, and the calling agent's run as their parent.
func TestAgentToolInsideAStep(t *testing.T) {
	t.Parallel()
	inner := echo("facts")
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.AgentStep("research", lead(inner.AgentID(), agent.AsTool(inner, "")), ""),
	}}
	id := run.NewID()
	evs := collect(t, t.Context(), w, "go", run.WithID(id))
	var leadRun string
	nested := 0
	for i, ev := range evs {
		if ev.EventIndex != i {
			t.Errorf("event %d has index %d", i, ev.EventIndex)
		}
		switch ev.AgentID {
		case "lead":
			leadRun = ev.RunID
		case inner.AgentID():
			nested++
			if ev.ParentRunID != leadRun || ev.WorkflowRunID != id || ev.StepName != "research" || ev.RunID == leadRun {
				t.Errorf("inner event %s: run %s parent %q workflow run %q step %q", ev.Event, ev.RunID, ev.ParentRunID, ev.WorkflowRunID, ev.StepName)
			}
		}
	}
	if nested == 0 {
		t.Fatalf("no inner events: %s", types(evs))
	}
	oneTerminalPerRun(t, evs, id)
}

func TestWorkflowAsTool(t *testing.T) {
	t.Parallel()
	inner := &workflow.Workflow{Name: "Research Flow", Steps: []workflow.Step{
		workflow.AgentStep("search", echo("found"), ""),
		workflow.FuncStep("shout", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: strings.ToUpper(in.Previous)}, nil
		}),
	}}
	a := lead("research-flow", workflow.AsTool(inner, "Researches a topic"))
	id := run.NewID()
	var evs []*run.Event
	for ev, err := range a.Stream(t.Context(), "go", run.WithID(id)) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	var wfRun string
	for i, ev := range evs {
		if ev.EventIndex != i {
			t.Errorf("event %d has index %d", i, ev.EventIndex)
		}
		if ev.Event == run.EventWorkflowStarted {
			wfRun = ev.RunID
			if ev.ParentRunID != id || ev.WorkflowID != "research-flow" {
				t.Errorf("WorkflowStarted: parent %q workflow %q", ev.ParentRunID, ev.WorkflowID)
			}
		}
		if ev.AgentID == "agent-found" && ev.WorkflowRunID != wfRun {
			t.Errorf("the workflow's agent event %s has workflow run %q, want %q", ev.Event, ev.WorkflowRunID, wfRun)
		}
		if ev.Event == run.EventToolCallCompleted && ev.Tool.Result != "FOUND" {
			t.Errorf("tool result %q, want the workflow's content", ev.Tool.Result)
		}
	}
	if wfRun == "" || countOf(evs, run.EventWorkflowCompleted) != 1 {
		t.Fatalf("events: %s", types(evs))
	}
	oneTerminalPerRun(t, evs, id)
}

// Cancelling the agent that called a workflow as a tool cancels the workflow's run
// and the agent runs in its steps at once.
func TestWorkflowAsToolCancelled(t *testing.T) {
	t.Parallel()
	inner := &workflow.Workflow{Name: "slow", Steps: []workflow.Step{workflow.AgentStep("s", slowAgent("S", "a b"), "")}}
	a := lead("slow", workflow.AsTool(inner, ""))
	id := run.NewID()
	var evs []*run.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range a.Stream(t.Context(), "go", run.WithID(id)) {
			evs = append(evs, ev)
			if ev.Event == run.EventRunContent {
				go a.CancelRun(context.Background(), id)
			}
		}
	}()
	within(t, done, "stream")
	ends := map[run.EventType]int{}
	for _, ev := range evs {
		if ev.Event.Terminal() {
			ends[ev.Event]++
		}
	}
	if ends[run.EventRunCancelled] != 2 || ends[run.EventWorkflowCancelled] != 1 || len(ends) != 2 {
		t.Errorf("terminal events %v, want the agent's, the workflow's and its agent's cancelled", ends)
	}
	oneTerminalPerRun(t, evs, id)
}

func TestWorkflowAsToolInvalid(t *testing.T) {
	t.Parallel()
	for _, w := range []*workflow.Workflow{nil, {Name: "empty"}} {
		a := &agent.Agent{Name: "a", Model: scripted.New("x"), Tools: []tool.Tool{workflow.AsTool(w, "")}}
		if _, err := a.Run(t.Context(), "go"); !errors.Is(err, run.ErrInvalid) {
			t.Errorf("Run with %v as a tool: %v, want ErrInvalid", w, err)
		}
	}
	// Called outside a run, the workflow runs at the top level.
	w := &workflow.Workflow{Name: "w", Steps: []workflow.Step{workflow.FuncStep("f", fn("out"))}}
	if got, err := workflow.AsTool(w, "").Call(t.Context(), json.RawMessage(`{"input":"x"}`)); got != "out" || err != nil {
		t.Errorf("Call = %q, %v", got, err)
	}
}
