package agent

import (
	"context"
	"fmt"

	"github.com/kern-dev/kern/tool"
)

// currentTools returns the definitions of the agent's tools and of its toolsets'
// current tools, for a model request, and the toolsets' tools themselves. A toolset
// that cannot say its tools, a tool that cannot be offered, or two tools of one name
// end the run.
func (a *Agent) currentTools(ctx context.Context) ([]tool.Definition, []tool.Tool, error) {
	defs := a.definitions()
	seen := make(map[string]bool, len(defs))
	for _, d := range defs {
		seen[d.Name] = true
	}
	var offered []tool.Tool
	for _, ts := range a.Toolsets {
		tools, err := ts.Tools(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("agent %q: tools: %w", a.Name, err)
		}
		for _, t := range tools {
			if err := tool.Validate(t); err != nil {
				return nil, nil, fmt.Errorf("agent %q: %w", a.Name, err)
			}
			d := t.Definition()
			if seen[d.Name] {
				return nil, nil, fmt.Errorf("agent %q: two tools named %q", a.Name, d.Name)
			}
			seen[d.Name] = true
			defs = append(defs, d)
			offered = append(offered, t)
		}
	}
	return defs, offered, nil
}

// offeredKey is the context key of the toolsets' tools offered in the model request
// whose calls run in the context.
type offeredKey struct{}

// withOffered returns ctx carrying the toolsets' tools offered (ctx itself when there
// are none): a model calls the tools of the request it answers, even when a toolset
// changed since.
func withOffered(ctx context.Context, tools []tool.Tool) context.Context {
	if len(tools) == 0 {
		return ctx
	}
	return context.WithValue(ctx, offeredKey{}, tools)
}

// tool returns the agent's tool named name, or else the toolset tool offered in
// ctx's model request; nil if there is none.
func (a *Agent) tool(ctx context.Context, name string) tool.Tool {
	if t := a.find(name); t != nil {
		return t
	}
	return offeredTool(ctx, name)
}

// offeredTool returns the offered toolset tool named name, nil if there is none.
func offeredTool(ctx context.Context, name string) tool.Tool {
	tools, _ := ctx.Value(offeredKey{}).([]tool.Tool)
	for _, t := range tools {
		if t.Definition().Name == name {
			return t
		}
	}
	return nil
}
