package workflow_test

import (
	"errors"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// TestWorkflowBudget checks that a workflow's budget spans its agent steps: the
// step that goes over it fails, the step after it does not run, and the run ends
// ERROR with the budget error; the run's metrics count every step's tokens.
func TestWorkflowBudget(t *testing.T) {
	t.Parallel()
	m := scripted.New("one two three four five") // about 5 output and a few input tokens
	writer := &agent.Agent{Name: "writer", Model: m}
	probe, err := writer.Run(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	per := probe.Metrics.TotalTokens
	w := &workflow.Workflow{Name: "thrifty", Budget: per + per/2, Steps: []workflow.Step{
		workflow.AgentStep("first", writer, ""),
		workflow.AgentStep("second", writer, ""),
		workflow.AgentStep("third", writer, ""),
	}}
	out, err := w.Run(t.Context(), "go")
	var be *run.BudgetError
	if !errors.Is(err, run.ErrBudget) || !errors.As(err, &be) || be.What != `workflow "thrifty"` {
		t.Fatalf("error %v, want the workflow's budget error", err)
	}
	if out.Status != run.StatusError || len(out.StepResults) != 2 || out.StepResults[1].Status != run.StatusError {
		t.Errorf("status %s, step results %+v; want ERROR after the second step failed", out.Status, out.StepResults)
	}
	if out.Metrics.TotalTokens <= per {
		t.Errorf("run tokens %d, want both steps' (> %d)", out.Metrics.TotalTokens, per)
	}
	if err := (&workflow.Workflow{Name: "bad", Budget: -1, Steps: w.Steps}).Validate(); !errors.Is(err, run.ErrInvalid) {
		t.Errorf("negative budget: %v", err)
	}
}
