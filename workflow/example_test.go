package workflow_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
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
