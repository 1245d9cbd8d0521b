package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/telemetry"
	"github.com/kern-dev/kern/workflow"
)

// TestWorkflowPauseSpans: a workflow that pauses before a step that asks for a
// confirmation ends its run span PAUSED, unset, with a kern.paused event naming
// the step, a kern.step.paused event for the step that waits, and its finished
// step's span ended as usual; nothing is left open or told lost.
func TestWorkflowPauseSpans(t *testing.T) {
	o, exp := newObserver(t, false)
	wf := &workflow.Workflow{Name: "Reviewed", Steps: []workflow.Step{
		workflow.AgentStep("draft", &agent.Agent{Name: "Drafter", Model: scripted.New("a draft")}, ""),
		workflow.AgentStep("publish", &agent.Agent{Name: "Publisher", Model: scripted.New("published")}, "").
			WithConfirmation("Publish it?", workflow.OnRejectSkip),
	}}
	id := run.NewID()
	ctx, tr := o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindWorkflow, Component: wf.WorkflowID(), Name: wf.Name})
	x, err := wf.Start(ctx, "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	tr.Follow(x)
	if out := x.Wait(); out.Status != run.StatusPaused {
		t.Fatalf("run %s", out.Status)
	}
	o.Wait()
	m := byName(exp.GetSpans())
	root := m["invoke_workflow Reviewed"]
	if v, _ := attr(root, "kern.run.status"); v.AsString() != "PAUSED" || root.Status.Code != codes.Unset {
		t.Errorf("root: kern.run.status %q, status %v; want PAUSED, unset", v.AsString(), root.Status)
	}
	events := map[string]string{}
	for _, ev := range root.Events {
		events[ev.Name] = ""
		for _, kv := range ev.Attributes {
			if kv.Key == "kern.paused.step_name" || kv.Key == "kern.step.name" {
				events[ev.Name] = kv.Value.AsString()
			}
		}
	}
	if events[telemetry.EventPaused] != "publish" || events[telemetry.EventStepPaused] != "publish" {
		t.Errorf("root's events %v, want kern.paused and kern.step.paused naming publish", events)
	}
	if _, lost := events["kern.run.lost"]; lost {
		t.Error("a paused run is told lost")
	}
	if d := m["step draft"]; d.Name == "" || d.EndTime.IsZero() || d.Status.Code != codes.Unset {
		t.Errorf("step draft: %+v", d.Status)
	}
	if _, ok := m["step publish"]; ok {
		t.Error("a span for the step that waits, which has not run")
	}
}
