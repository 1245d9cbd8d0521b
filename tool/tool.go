// Package tool defines the tools an agent offers a model: a name, a description, the
// JSON Schema of the arguments, and a call.
package tool

import (
	"context"
	"encoding/json"
)

// Definition is what a model is told about a tool.
type Definition struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"` // a JSON Schema object; may be shared, do not modify
}

// Tool is something an agent can call on a model's behalf.
//
// Call receives the arguments as the model wrote them (a JSON object) and returns the
// text the model reads back. A returned error is shown to the model as a tool error;
// it does not end the run. Call must return promptly once ctx is cancelled.
type Tool interface {
	Definition() Definition
	Call(ctx context.Context, args json.RawMessage) (string, error)
}
