package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func TestPanicInContainerKeepsFinishedSteps(t *testing.T) {
	t.Parallel()
	for _, step := range []workflow.Step{
		&workflow.Condition{Name: "c", If: func(*workflow.Input) bool { panic("boom") }, Steps: []workflow.Step{workflow.FuncStep("b", fn("x"))}},
		&workflow.Router{Name: "r", Route: func(*workflow.Input) []workflow.Step { panic("boom") }, Choices: []workflow.Step{workflow.FuncStep("b", fn("x"))}},
		&workflow.Loop{Name: "l", MaxIterations: 3, Until: func([]run.StepResult) bool { panic("boom") }, Steps: []workflow.Step{workflow.FuncStep("b", fn("x"))}},
	} {
		w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.FuncStep("a", fn("first")), step}}
		out, err := w.Run(t.Context(), "go")
		if out.Status != run.StatusError || !strings.Contains(fmt.Sprint(err), "boom") || len(out.StepResults) != 2 ||
			out.StepResults[0].Content != "first" {
			t.Errorf("%T: %s %v, results %+v", step, out.Status, err, out.StepResults)
		}
	}
}

func TestErrorsKeepTheirIdentity(t *testing.T) {
	t.Parallel()
	errDisk := errors.New("disk full")
	loop := &agent.Agent{Name: "loop", MaxIterations: 1, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "t"}}},
	}}, Tools: []tool.Tool{tool.Func("t", "", func(ctx context.Context, a struct{}) (string, error) { return "", nil })}}
	tests := []struct {
		name string
		step workflow.Step
		want error
	}{
		{"function", workflow.FuncStep("f", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{}, fmt.Errorf("write: %w", errDisk)
		}), errDisk},
		{"agent", workflow.AgentStep("a", loop, ""), agent.ErrMaxIterations},
	}
	for _, tt := range tests {
		w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{tt.step}}
		_, err := w.Run(t.Context(), "go")
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want it to wrap %v", tt.name, err, tt.want)
		}
	}
}

// A branch that fails with an error wrapping context.Canceled of its own is a failure,
// not a cancel, and the siblings it cancels do not change that.
func TestParallelFailureIsAnError(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{&workflow.Parallel{Name: "p", Steps: []workflow.Step{
		workflow.AgentStep("slow", slowAgent("S", "a b"), ""),
		workflow.FuncStep("fails", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			sub, cancel := context.WithCancel(ctx)
			cancel()
			return workflow.StepOutput{}, fmt.Errorf("fetch: %w", sub.Err())
		}),
	}}}}
	out, err := w.Run(t.Context(), "go")
	if out.Status != run.StatusError || errors.Is(err, run.ErrCancelled) || !strings.Contains(out.Error, "fetch") {
		t.Fatalf("Run = %s %q, %v; want ERROR", out.Status, out.Error, err)
	}
}

func TestTypedNilStep(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{(*workflow.Task)(nil)}}
	if _, err := w.Run(t.Context(), "go"); !errors.Is(err, run.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	var nilTool *badTool
	a := &agent.Agent{Name: "a", Model: scripted.New("x"), Tools: []tool.Tool{nilTool}}
	if _, err := a.Run(t.Context(), "go"); !errors.Is(err, run.ErrInvalid) {
		t.Fatalf("agent with a typed nil tool: %v", err)
	}
}

type badTool struct{ def tool.Definition }

func (b *badTool) Definition() tool.Definition { return b.def }
func (b *badTool) Call(context.Context, json.RawMessage) (string, error) {
	return "", nil
}
