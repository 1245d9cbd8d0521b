package tool

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kern-dev/kern/run"
)

// Control says what a call of a tool waits for from a person before (or instead
// of) running: a confirmation, values the person gives, or a result computed
// outside kern. An agent whose model calls such a tool pauses (RunPaused) until
// the run is continued with the decision.
type Control struct {
	// RequiresConfirmation: the call runs once a person confirms it; rejected,
	// the model reads the rejection note as the tool's (error) result.
	RequiresConfirmation bool
	// RequiresUserInput: a person gives the values of UserInputFields, which are
	// set in the call's arguments before it runs.
	RequiresUserInput bool
	UserInputFields   []run.UserInputField
	// ExternalExecution: the call is not run by kern; whoever continues the run
	// gives its result.
	ExternalExecution bool
	// Expiry, when set, bounds how long the run waits for a person: after it,
	// the run ends as OnExpiry says (run.ExpiryCancel if empty). Of several
	// calls of one turn, the shortest expiry holds.
	Expiry   time.Duration
	OnExpiry run.OnExpiry
}

// Pauses reports whether a call under c waits for a person.
func (c Control) Pauses() bool {
	return c.RequiresConfirmation || c.RequiresUserInput || c.ExternalExecution
}

// Option sets a tool's Control.
type Option func(*Control)

// RequiresConfirmation makes every call of the tool wait for a person's
// confirmation.
func RequiresConfirmation() Option { return func(c *Control) { c.RequiresConfirmation = true } }

// RequiresUserInput makes every call of the tool wait for a person to give the
// values of fields, which are set in the call's arguments (by name) before it
// runs.
func RequiresUserInput(fields ...run.UserInputField) Option {
	return func(c *Control) {
		c.RequiresUserInput = true
		c.UserInputFields = append(c.UserInputFields, fields...)
	}
}

// ExternalExecution makes the tool's calls run outside kern: the run pauses, and
// whoever continues it gives the result.
func ExternalExecution() Option { return func(c *Control) { c.ExternalExecution = true } }

// Expires makes the run wait at most d for a person's decision on the tool's
// calls; then it ends as onExpiry says (run.ExpiryCancel if empty).
func Expires(d time.Duration, onExpiry run.OnExpiry) Option {
	return func(c *Control) { c.Expiry, c.OnExpiry = d, onExpiry }
}

// Controlled is implemented by tools whose calls may wait for a person.
type Controlled interface {
	Control() Control
}

// ControlOf returns t's Control: the zero Control for a tool that is not
// Controlled.
func ControlOf(t Tool) Control {
	if c, ok := t.(Controlled); ok {
		return c.Control()
	}
	return Control{}
}

// With returns t with the options applied to its Control: a way to ask for a
// confirmation before the calls of any tool (a toolkit's, an MCP server's). It
// returns t itself when there are no options.
func With(t Tool, opts ...Option) Tool {
	if len(opts) == 0 {
		return t
	}
	c := ControlOf(t)
	for _, o := range opts {
		o(&c)
	}
	return &controlled{Tool: t, c: c}
}

// controlled is a tool with a Control of its own.
type controlled struct {
	Tool
	c Control
}

func (t *controlled) Control() Control { return t.c }

func (t *controlled) Call(ctx context.Context, args json.RawMessage) (string, error) {
	return t.Tool.Call(ctx, args)
}

// Validate passes on what the wrapped tool's validation says.
func (t *controlled) Validate() error { return Validate(t.Tool) }
