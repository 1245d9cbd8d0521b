package workflow_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// TestConditionPauseValidate: a condition may wait for a confirmation only at the
// top level, only for a confirmation, and only it may take on_reject else; a
// condition that waits needs no If (the person decides).
func TestConditionPauseValidate(t *testing.T) {
	noop := func() workflow.Step {
		return workflow.FuncStep("noop", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{}, nil
		})
	}
	gate := func() *workflow.Condition {
		return &workflow.Condition{Name: "gate", Steps: []workflow.Step{noop()}}
	}
	elseTask := workflow.FuncStep("task", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		return workflow.StepOutput{}, nil
	})
	elseTask.Pause = &workflow.Pause{RequiresConfirmation: true, OnReject: workflow.OnRejectElse}
	asksInput := gate()
	asksInput.Pause = &workflow.Pause{RequiresConfirmation: true, RequiresUserInput: true,
		UserInputFields: []run.UserInputField{{Name: "x", FieldType: "str"}}}
	dupElse := gate().WithConfirmation("", "")
	dupElse.Else = []workflow.Step{noop()}
	cases := []struct {
		name string
		step workflow.Step
		ok   bool
	}{
		{"top-level", gate().WithConfirmation("Go?", ""), true},
		{"top-level-skip", gate().WithConfirmation("Go?", workflow.OnRejectSkip), true},
		{"nested", &workflow.Steps{Name: "outer", Steps: []workflow.Step{gate().WithConfirmation("Go?", "")}}, false},
		{"no-if-no-pause", gate(), false},
		{"else-on-a-task", elseTask, false},
		{"user-input", asksInput, false},
		{"else-steps-named-as-steps", dupElse, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := (&workflow.Workflow{Name: "wf", Steps: []workflow.Step{tc.step}}).Validate()
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, run.ErrInvalid) {
				t.Fatalf("Validate = %v; want ok %v", err, tc.ok)
			}
		})
	}
}

// TestConditionElse: a condition whose If is false runs its Else steps.
func TestConditionElse(t *testing.T) {
	say := func(name, text string) workflow.Step {
		return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: text}, nil
		})
	}
	for _, tc := range []struct {
		holds bool
		want  string
	}{{true, "then"}, {false, "else"}} {
		wf := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{&workflow.Condition{Name: "c",
			If:    func(*workflow.Input) bool { return tc.holds },
			Steps: []workflow.Step{say("then", "then")}, Else: []workflow.Step{say("else", "else")}}}}
		out, err := wf.Run(context.Background(), "dragons")
		if err != nil || out.Content != tc.want {
			t.Errorf("If %v: %q, %v; want %q", tc.holds, out.Content, err, tc.want)
		}
	}
}
