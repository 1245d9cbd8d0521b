package agent

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// ToolArgs are the arguments of an agent (or a workflow) given as a tool: the input
// it runs on.
type ToolArgs struct {
	Input string `json:"input" jsonschema:"What to ask: the task or question, with everything needed to answer it."`
}

// AsTool returns a tool that runs a on the input the model gives it (see ToolArgs),
// so that another agent can hand it work. The tool is named after a's ID;
// description tells the model when to call it.
//
// Called by an agent's run, a's run is a child of that run: a run ID of its own, the
// caller's as its parent_run_id, its events in the caller's stream (numbered by the
// top-level run, as those of an agent in a workflow step are), registered where the
// caller's run is, and cancelled at once when the caller's run is. The tool's result
// is a's content; a failure of a's run is a tool error the model reads, and the
// calling run goes on. Called outside a run, a runs as a top-level run.
func AsTool(a *Agent, description string) tool.Tool {
	t := &agentTool{a: a}
	name := ""
	if a != nil {
		name = a.AgentID()
	}
	t.Tool = tool.Func(name, description, t.call)
	return t
}

// agentTool is a tool.Func (name, schema, argument checks) that runs an agent.
type agentTool struct {
	tool.Tool
	a *Agent
}

// Validate reports an agent that cannot run at all. It checks no deeper (the
// agent's own tools are checked when it runs): an agent may be given itself, or an
// agent that is given it, as a tool.
func (t *agentTool) Validate() error {
	switch {
	case t.a == nil:
		return fmt.Errorf("agent given as a tool is nil")
	case t.a.Model == nil:
		return fmt.Errorf("agent %q given as a tool has no model", t.a.Name)
	}
	return tool.Validate(t.Tool)
}

func (t *agentTool) call(ctx context.Context, args ToolArgs) (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	var out *run.Output
	var err error
	if sc, ok := engine.ScopeFromContext(ctx); ok {
		out, err = t.a.RunNested(ctx, sc, args.Input)
	} else if out, err = t.a.Run(ctx, args.Input); out != nil {
		err = out.Err() // the run's outcome; a recorder's failure is not the tool's
	}
	switch {
	case out == nil:
		return "", err
	case err != nil:
		return "", fmt.Errorf("agent %q: %w", t.a.Name, err)
	}
	return out.Content, nil
}

// toolScope returns ctx carrying the scope in which the run's tools start nested
// runs (an agent given as a tool): the registry and log of the run described by
// base, its origin, and its ID as their parent. An agent without tools needs none,
// and pays nothing.
func (a *Agent) toolScope(ctx context.Context, reg *run.Registry, log *engine.Log, base *run.Event) context.Context {
	if len(a.Tools) == 0 {
		return ctx
	}
	sc := &engine.Scope{Registry: reg, Log: log, Origin: *base.Origin}
	sc.Origin.ParentRunID = base.RunID
	return engine.ContextWithScope(ctx, sc)
}
