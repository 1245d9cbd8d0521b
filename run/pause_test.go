package run

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestPauseEventsJSON: a WorkflowPaused event carries Agno's flat fields
// (status, paused_step_index, paused_step_name) beside its step requirements, and
// reads back the same.
func TestPauseEventsJSON(t *testing.T) {
	i := 1
	ev := Event{Event: EventWorkflowPaused, RunID: "r", Detail: &Detail{
		StepRequirements: []StepRequirement{{StepID: "publish", StepName: "publish", StepIndex: 1, RequiresConfirmation: true}},
		StepPause:        &StepPause{Status: StatusPaused, PausedStepIndex: &i, PausedStepName: "publish"}}}
	b, err := ev.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"status":"PAUSED"`, `"paused_step_index":1`, `"paused_step_name":"publish"`, `"step_requirements":[{"step_id":"publish"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Detail == nil || back.Detail.StepPause == nil ||
		*back.Detail.StepPause.PausedStepIndex != 1 || len(back.Detail.StepRequirements) != 1 {
		t.Fatalf("read back: %+v %v", back.Detail, err)
	}
}

func TestResolve(t *testing.T) {
	yes, no := true, false
	pending := []ToolExecution{
		{ToolCallID: "a", ToolName: "send", RequiresConfirmation: true},
		{ToolCallID: "b", ToolName: "ask", RequiresUserInput: true, UserInputSchema: []UserInputField{{Name: "to"}}},
		{ToolCallID: "c", ToolName: "calc", ExternalExecutionRequired: true},
	}
	got, err := Resolve("r", pending, []ToolExecution{
		{ToolCallID: "a", Confirmed: &no, ConfirmationNote: "no"},
		{ToolCallID: "b", UserInputSchema: []UserInputField{{Name: "to", Value: "ada"}}},
		{ToolCallID: "c", Result: "42"},
	})
	if err != nil || *got[0].Confirmed || got[0].ConfirmationNote != "no" || got[1].UserInputSchema[0].Value != "ada" || got[2].Result != "42" {
		t.Fatalf("resolved: %+v %v", got, err)
	}
	_, err = Resolve("r", pending, []ToolExecution{{ToolCallID: "a", Confirmed: &yes}, {ToolCallID: "a"}, {ToolCallID: "z"}, {}})
	var de *DecisionError
	if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatch: %v", err)
	}
	for _, want := range []string{`"a" is decided twice`, `"b" (ask) is not decided`, `"c" (calc) is not decided`, `"z" is not one the run waits for`, "tools[3] has no tool_call_id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}
