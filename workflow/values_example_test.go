package workflow_test

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/workflow"
)

// A structured agent step feeds a function step a typed value, which feeds the
// next one another.
func ExamplePrevious() {
	type Outline struct {
		Title    string   `json:"title"`
		Sections []string `json:"sections"`
	}
	type Count struct {
		Sections int `json:"sections"`
	}
	planner := &agent.Agent{
		Name:   "planner",
		Model:  scripted.New(`{"title": "Dragons", "sections": ["lairs", "hoards"]}`),
		Output: agent.Output[Outline](),
	}
	w := &workflow.Workflow{Name: "outline", Steps: []workflow.Step{
		workflow.AgentStep("plan", planner, ""),
		workflow.FuncStep("count", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			o, err := workflow.Previous[Outline](in) // the agent's JSON, decoded
			if err != nil {
				return workflow.StepOutput{}, err
			}
			return workflow.StepOutput{Value: Count{Sections: len(o.Sections)}}, nil
		}),
		workflow.FuncStep("report", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			c, err := workflow.Previous[Count](in) // the value itself
			if err != nil {
				return workflow.StepOutput{}, err
			}
			o, err := workflow.StepValue[Outline](in, "plan")
			return workflow.StepOutput{Content: fmt.Sprintf("%s: %d sections", o.Title, c.Sections)}, err
		}),
	}}
	out, err := w.Run(context.Background(), "write about dragons")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.StepResults[1].ContentType, out.StepResults[1].Content)
	fmt.Println(out.Content)
	// Output:
	// Count {"sections":2}
	// Dragons: 2 sections
}
