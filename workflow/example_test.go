package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func ExampleWorkflow_Run() {
	wf := &workflow.Workflow{Name: "Shout", Steps: []workflow.Step{
		workflow.AgentStep("draft", &agent.Agent{Name: "Drafter", Model: scripted.New("hello world")}, ""),
		workflow.FuncStep("upper", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: strings.ToUpper(in.Previous)}, nil
		}),
	}}
	out, err := wf.Run(context.Background(), "greet")
	fmt.Println(out.Content, err)
	// Output: HELLO WORLD <nil>
}

// The reference program's shape: stream a run in one goroutine, cancel it by id from
// another. What the run produced until then stays in its output.
func ExampleWorkflow_CancelRun() {
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{
		Turns: []scripted.Turn{{Text: "Once upon a time there was a dragon"}},
		Delay: time.Hour, // the model pauses after its first word
	}}
	wf := &workflow.Workflow{Name: "Story", Steps: []workflow.Step{workflow.AgentStep("write", writer, "")}}

	ctx := context.Background()
	runID := run.NewID()
	for ev, err := range wf.Stream(ctx, "A story", run.WithID(runID)) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch ev.Event {
		case run.EventRunContent:
			fmt.Printf("content: %q\n", ev.Content)
			go wf.CancelRun(ctx, runID) // from anywhere
		case run.EventWorkflowCancelled:
			fmt.Println("cancelled:", ev.Reason)
		}
	}
	st, _ := wf.CancelRun(ctx, runID) // after the end: reports the final status
	fmt.Println(st)
	// Output:
	// content: "Once "
	// cancelled: cancelled by request
	// CANCELLED
}

// A step whose attempts may fail runs again, as its retry policy says; a StepRetried
// event marks each failed attempt.
func ExampleTask_WithRetry() {
	calls := 0
	flaky := func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		if calls++; calls < 3 {
			return workflow.StepOutput{}, errors.New("service unavailable")
		}
		return workflow.StepOutput{Content: "fetched"}, nil
	}
	wf := &workflow.Workflow{Name: "Fetch", Steps: []workflow.Step{
		workflow.FuncStep("fetch", flaky).WithRetry(run.RetryPolicy{
			Attempts:   3,
			Backoff:    time.Millisecond,
			MaxBackoff: 10 * time.Millisecond,
			Retryable:  run.RetryAny,
		}),
	}}
	for ev, err := range wf.Stream(context.Background(), "go") {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch ev.Event {
		case run.EventStepRetried:
			fmt.Printf("attempt %d failed: %s\n", ev.Attempt, ev.Error)
		case run.EventWorkflowCompleted:
			res := ev.Detail.StepResults[0]
			fmt.Printf("%s after %d attempts\n", res.Content, res.Attempts)
		}
	}
	// Output:
	// attempt 1 failed: service unavailable
	// attempt 2 failed: service unavailable
	// fetched after 3 attempts
}

// A step that runs past its timeout fails: the run ends ERROR, not CANCELLED.
func ExampleTask_WithTimeout() {
	slow := &agent.Agent{Name: "Slow", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}}
	wf := &workflow.Workflow{Name: "Bounded", Steps: []workflow.Step{
		workflow.AgentStep("think", slow, "").WithTimeout(10 * time.Millisecond),
	}}
	out, err := wf.Run(context.Background(), "go")
	fmt.Println(out.Status, errors.Is(err, run.ErrTimeout), errors.Is(err, run.ErrCancelled))
	fmt.Println(out.Error)
	// Output:
	// ERROR true false
	// step "think": timed out after 10ms
}

// A workflow handed to an agent as a tool runs as a child run of the agent's.
func ExampleAsTool() {
	research := &workflow.Workflow{Name: "Research", Steps: []workflow.Step{
		workflow.AgentStep("search", &agent.Agent{Name: "Searcher", Model: scripted.New("three facts")}, ""),
	}}
	lead := &agent.Agent{
		Name:  "Lead",
		Tools: []tool.Tool{workflow.AsTool(research, "Researches a topic")},
		Model: &scripted.Model{Turns: []scripted.Turn{
			{ToolCalls: []model.ToolCall{{Name: "research", Arguments: json.RawMessage(`{"input":"dragons"}`)}}},
			{Text: "Summarised."},
		}},
	}
	for ev, err := range lead.Stream(context.Background(), "dragons") {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch ev.Event {
		case run.EventWorkflowStarted, run.EventWorkflowCompleted, run.EventToolCallCompleted:
			fmt.Println(ev.Event)
		case run.EventRunCompleted:
			if ev.WorkflowRunID == "" {
				fmt.Println("lead:", ev.Content)
			}
		}
	}
	// Output:
	// WorkflowStarted
	// WorkflowCompleted
	// ToolCallCompleted
	// lead: Summarised.
}
