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

// TestResumedBudgetCountsFinishedSteps resumes a run of a workflow with a budget
// after a first step whose stored result says what it used: the resumed run's
// metrics and budget start from that usage, so that resuming does not grant the
// budget again. With the usage over the budget already, no step runs.
func TestResumedBudgetCountsFinishedSteps(t *testing.T) {
	t.Parallel()
	writer := &agent.Agent{Name: "writer", Model: scripted.New("one two three four five")}
	probe, err := writer.Run(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	per := probe.Metrics.TotalTokens

	// A first run records its step's metrics, which a checkpoint keeps as JSON.
	kept := &keptSteps{}
	w := &workflow.Workflow{Name: "thrifty", Recorder: kept, Budget: per + per/2, Steps: []workflow.Step{
		workflow.AgentStep("first", writer, ""),
		workflow.AgentStep("second", writer, ""),
	}}
	x, err := w.Start(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	x.Wait()
	done := kept.steps(t)
	if len(done) != 1 || done[0].Metrics.TotalTokens != per || done[0].Metrics.Duration <= 0 {
		t.Fatalf("checkpointed step results %+v, want the first step's metrics (%d tokens)", done, per)
	}

	for _, tc := range []struct {
		name    string
		spent   int
		steps   int // step results of the resumed run
		modeled bool
	}{
		{"second step goes over", per, 2, true},
		{"over already", 2 * per, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := &workflow.Workflow{Name: "thrifty", Budget: per + per/2, Steps: w.Steps}
			first := done[0]
			first.Metrics.TotalTokens = tc.spent
			x, err := w.Start(t.Context(), "go", run.WithResume(&run.Resume{NextEvent: 10, Steps: []run.StepResult{first}}))
			if err != nil {
				t.Fatal(err)
			}
			out := x.Wait()
			if !errors.Is(out.Err(), run.ErrBudget) || out.Status != run.StatusError || len(out.StepResults) != tc.steps {
				t.Fatalf("status %s, error %v, %d step results; want ERROR over the budget", out.Status, out.Err(), len(out.StepResults))
			}
			if out.Metrics.TotalTokens < tc.spent {
				t.Errorf("run tokens %d, want at least the finished step's %d", out.Metrics.TotalTokens, tc.spent)
			}
			modeled := false
			for _, ev := range x.Log.Events() {
				modeled = modeled || ev.Event == run.EventModelRequestStarted
			}
			if modeled != tc.modeled {
				t.Errorf("the second step's model was asked: %v, want %v", modeled, tc.modeled)
			}
		})
	}
}
