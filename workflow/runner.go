package workflow

import (
	"context"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// Runner is what a step runs as a child run of the workflow's besides an agent: a
// team (package team's Team; team.Step makes such a step). Its events go to the
// workflow's stream, and it is cancelled with the workflow's run.
type Runner interface {
	RunNested(ctx context.Context, sc *engine.Scope, input string, opts ...run.Option) (*run.Output, error)
	Validate() error
	// RunnerInfo names the runner in a workflow's description: its kind ("team")
	// and id.
	RunnerInfo() (kind, id string)
}

// nested runs the step's agent or runner inside the workflow's run.
func (t *Task) nested(ctx context.Context, sc *engine.Scope, input string, opts ...run.Option) (*run.Output, error) {
	if t.Runner != nil {
		return t.Runner.RunNested(ctx, sc, input, opts...)
	}
	return t.Agent.RunNested(ctx, sc, input, opts...)
}
