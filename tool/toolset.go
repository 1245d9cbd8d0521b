package tool

import "context"

// Toolset is a group of tools that may change while a run goes on, such as the tools
// an MCP server offers. An agent asks for the current tools before each of its model
// requests, and calls a tool the model names from the latest list.
//
// Tools returns promptly once ctx is cancelled; an error ends the run that asked (the
// agent cannot tell the model its tools). The returned slice is read, never
// modified, by the caller.
type Toolset interface {
	Tools(ctx context.Context) ([]Tool, error)
}
