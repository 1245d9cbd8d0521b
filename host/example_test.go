package host_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// A program runs two workflows through a host, without HTTP: one to its end, one
// cancelled by id. With a store (store/sqlite, store/postgres) instead of nil, the
// runs are recorded, and a cancel from any process on the same database reaches
// them.
func Example() {
	story := &workflow.Workflow{Name: "Story", Steps: []workflow.Step{
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: scripted.New("Once upon a time")}, ""),
	}}
	gate := make(chan struct{}) // never opened: the run waits for its cancel
	waiting := &workflow.Workflow{Name: "Waiting", Steps: []workflow.Step{
		workflow.FuncStep("wait", func(ctx context.Context, _ *workflow.Input) (workflow.StepOutput, error) {
			select {
			case <-gate:
				return workflow.StepOutput{}, nil
			case <-ctx.Done():
				return workflow.StepOutput{}, context.Cause(ctx)
			}
		}),
	}}
	h, err := host.New(nil, host.Options{Workflows: []*workflow.Workflow{story, waiting}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close() // every run ends before the program does

	ctx := context.Background()
	out, err := story.Run(ctx, "Tell a story")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Status, out.Content)

	r, err := h.Start(host.Request{Kind: run.KindWorkflow, Component: "waiting", Input: "wait"})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, known, err := h.Cancel(ctx, r.ID(), run.ReasonRequested, true)
	fmt.Println(st, known, err)
	// Output:
	// COMPLETED Once upon a time
	// CANCELLED true <nil>
}
