package workflow

import (
	"context"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// Policy is the timeout and retry policy of a container step (Steps, Parallel,
// Condition, Loop, Router), which works as a Task's does on the container as a
// whole. Its zero value runs the container once, unbounded.
//
// With a Timeout, a container that runs longer fails with a *run.TimeoutError: the
// step running in it fails (a StepError event), the container ends ERROR, never
// CANCELLED. With a Retry policy, a failed attempt that the policy retries is
// followed by a StepRetried event, a wait, and the container run again from its
// start: its steps run again (those that completed in the failed attempt too;
// what they wrote to the session state stays written). The events of each attempt
// (the container's own, and those of its steps but for steps with a retry policy of
// their own, which number their own attempts) carry its number, and the
// container's result the number of attempts made. A cancel is never retried.
type Policy struct {
	// Timeout bounds each attempt; zero means no bound.
	Timeout time.Duration
	// Retry says when a failed attempt runs again; nil runs the container once.
	Retry *run.RetryPolicy
}

// WithTimeout sets the container's Timeout and returns the container.
func (s *Steps) WithTimeout(d time.Duration) *Steps { s.Timeout = d; return s }

// WithRetry sets the container's Retry policy and returns the container.
func (s *Steps) WithRetry(p run.RetryPolicy) *Steps { s.Retry = &p; return s }

// WithTimeout sets the container's Timeout and returns the container.
func (p *Parallel) WithTimeout(d time.Duration) *Parallel { p.Timeout = d; return p }

// WithRetry sets the container's Retry policy and returns the container.
func (p *Parallel) WithRetry(rp run.RetryPolicy) *Parallel { p.Retry = &rp; return p }

// WithTimeout sets the container's Timeout and returns the container.
func (c *Condition) WithTimeout(d time.Duration) *Condition { c.Timeout = d; return c }

// WithRetry sets the container's Retry policy and returns the container.
func (c *Condition) WithRetry(p run.RetryPolicy) *Condition { c.Retry = &p; return c }

// WithTimeout sets the container's Timeout and returns the container.
func (l *Loop) WithTimeout(d time.Duration) *Loop { l.Timeout = d; return l }

// WithRetry sets the container's Retry policy and returns the container.
func (l *Loop) WithRetry(p run.RetryPolicy) *Loop { l.Retry = &p; return l }

// WithTimeout sets the container's Timeout and returns the container.
func (rt *Router) WithTimeout(d time.Duration) *Router { rt.Timeout = d; return rt }

// WithRetry sets the container's Retry policy and returns the container.
func (rt *Router) WithRetry(p run.RetryPolicy) *Router { rt.Retry = &p; return rt }

func (p Policy) check(name string) error {
	if p.Timeout < 0 {
		return fmt.Errorf("step %q: negative timeout %s", name, p.Timeout)
	}
	if err := p.Retry.Validate(); err != nil {
		return fmt.Errorf("step %q: %w", name, err)
	}
	return nil
}

// run runs the container named name, at index i of frame f, under the policy: once
// runs one attempt of it, in the frame its events and its steps' carry.
func (p Policy) run(ctx context.Context, r *execution, f frame, name string, i int,
	once func(context.Context, frame) (run.StepResult, error)) (run.StepResult, error) {
	if p.Timeout == 0 && p.Retry == nil {
		return once(ctx, f)
	}
	if p.Retry != nil {
		f.attempt = 1
	}
	for {
		res, err := p.attempt(ctx, f, name, once)
		if !p.Retry.ShouldRetry(ctx, f.attempt, err) {
			res.Attempts = f.attempt
			return res, err
		}
		r.emit(run.EventStepRetried, r.stepOrigin(name, i, f), run.Event{Error: err.Error()})
		if err := p.Retry.Wait(ctx, f.attempt); err != nil {
			res := containerResult(ctx, name, nil, err) // cancelled between attempts
			res.Attempts = f.attempt
			return res, err
		}
		f.attempt++
	}
}

// attempt runs the container once, bounded by the policy's Timeout. An attempt cut
// short by a timeout (its own, or one around it) fails with the *run.TimeoutError.
func (p Policy) attempt(ctx context.Context, f frame, name string, once func(context.Context, frame) (run.StepResult, error)) (run.StepResult, error) {
	actx, cancel := run.ContextWithTimeout(ctx, p.Timeout, "")
	defer cancel()
	res, err := once(actx, f)
	if err != nil {
		if te := run.TimedOut(actx); te != nil {
			err = fmt.Errorf("step %q: %w", name, te)
			res.Status, res.Error = run.StatusError, err.Error()
		}
	}
	return res, err
}
