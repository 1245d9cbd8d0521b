package workflow

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// AsTool returns a tool that runs w on the input the model gives it (see
// agent.ToolArgs), so that an agent can hand a whole workflow work. The tool is
// named after w's ID; description tells the model when to call it.
//
// Called by an agent's run, w's run is a child of that run, as an agent given as a
// tool is (see agent.AsTool): a run ID of its own, the caller's as its
// parent_run_id, its events (and those of the agents in its steps) in the caller's
// stream, cancelled at once when the caller's run is. The tool's result is the
// workflow's content; a failure is a tool error the model reads. Called outside a
// run, w runs as a top-level run.
func AsTool(w *Workflow, description string) tool.Tool {
	t := &workflowTool{w: w}
	name := ""
	if w != nil {
		name = w.WorkflowID()
	}
	t.Tool = tool.Func(name, description, t.call)
	return t
}

// workflowTool is a tool.Func (name, schema, argument checks) that runs a workflow.
type workflowTool struct {
	tool.Tool
	w *Workflow
}

// Validate reports a workflow that cannot run at all. It checks no deeper (the
// workflow is checked whole when it runs): an agent in its steps may be given the
// workflow as a tool.
func (t *workflowTool) Validate() error {
	switch {
	case t.w == nil:
		return fmt.Errorf("workflow given as a tool is nil")
	case len(t.w.Steps) == 0:
		return fmt.Errorf("workflow %q given as a tool has no steps", t.w.Name)
	}
	return tool.Validate(t.Tool)
}

func (t *workflowTool) call(ctx context.Context, args agent.ToolArgs) (string, error) {
	if t.w == nil {
		return "", fmt.Errorf("workflow given as a tool is nil")
	}
	var out *run.Output
	var err error
	if sc, ok := engine.ScopeFromContext(ctx); ok {
		out, err = t.w.runNested(ctx, sc, args.Input)
	} else if out, err = t.w.Run(ctx, args.Input); out != nil {
		err = out.Err() // the run's outcome; a recorder's failure is not the tool's
	}
	switch {
	case out == nil:
		return "", err
	case err != nil:
		return "", fmt.Errorf("workflow %q: %w", t.w.Name, err)
	}
	return out.Content, nil
}
