package tool

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// Validator is implemented by tools that can tell, before a run starts, that they
// cannot work (an agent given as a tool that has no model); Validate calls it.
type Validator interface {
	Validate() error
}

// Policy bounds and retries the calls of a tool. Its zero value calls the tool once,
// unbounded.
type Policy struct {
	// Timeout bounds each attempt of a call; zero means no bound. An attempt that
	// runs longer fails with a *run.TimeoutError (matching run.ErrTimeout), which
	// the model reads as the tool's error; the run goes on.
	Timeout time.Duration
	// Retry says when a failed attempt runs again; nil calls the tool once. A
	// cancel of the run is never retried, and cancels a wait between attempts.
	Retry *run.RetryPolicy
}

// WithPolicy returns t with its calls bounded and retried as p says. The tool keeps
// t's definition. An invalid p (a negative timeout, a retry policy that
// run.RetryPolicy.Validate refuses) makes Validate report it, so the agent that
// offers the tool refuses to start.
func WithPolicy(t Tool, p Policy) Tool {
	return &policyTool{t: t, p: p}
}

type policyTool struct {
	t Tool
	p Policy
}

func (pt *policyTool) Definition() Definition { return pt.t.Definition() }

func (pt *policyTool) buildErr() error {
	if err := Validate(pt.t); err != nil {
		return err
	}
	name := pt.t.Definition().Name
	if pt.p.Timeout < 0 {
		return fmt.Errorf("tool %q: %w: negative timeout %s", name, ErrInvalidDefinition, pt.p.Timeout)
	}
	if err := pt.p.Retry.Validate(); err != nil {
		return fmt.Errorf("tool %q: %w: %w", name, ErrInvalidDefinition, err)
	}
	return nil
}

// Call calls the tool, each attempt bounded by the policy's Timeout, until an
// attempt succeeds or the policy retries its error no more.
func (pt *policyTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	for attempt := 1; ; attempt++ {
		result, err := pt.attempt(ctx, args)
		if !pt.p.Retry.ShouldRetry(ctx, attempt, err) {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return result, err
		}
		if err := pt.p.Retry.Wait(ctx, attempt); err != nil {
			return "", err
		}
	}
}

func (pt *policyTool) attempt(ctx context.Context, args json.RawMessage) (string, error) {
	actx, cancel := run.ContextWithTimeout(ctx, pt.p.Timeout, "")
	defer cancel()
	result, err := pt.t.Call(actx, args)
	if err == nil && actx.Err() != nil {
		err = context.Cause(actx)
	}
	if err != nil {
		if te := run.TimedOut(actx); te != nil {
			return "", fmt.Errorf("tool %q: %w", pt.t.Definition().Name, te)
		}
	}
	return result, err
}
