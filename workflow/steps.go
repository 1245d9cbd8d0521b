package workflow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// Step is one step of a workflow: a Task (an agent or a function), or a container of
// steps (Steps, Parallel, Condition, Loop, Router).
type Step interface {
	// execute runs the step and returns its result, partial when it failed or was
	// cancelled, and why it did not complete.
	execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error)
	validate(v *validator) error
}

// Input is what a step sees.
type Input struct {
	// Input is the workflow run's input.
	Input string
	// Previous is the content of the step before this one ("" for the first); the
	// JSON of a structured content (see PreviousType and the function Previous).
	Previous string
	// PreviousType is the content type of Previous when it is structured (see
	// run.StepResult.ContentType); empty for text.
	PreviousType string
	// Outputs are the results of every agent or function step finished so far, in
	// the order they finished.
	Outputs []run.StepResult
	// State is shared by every step of the run.
	State *State
	// UserInput are the values a person gave the step, when it asked for them
	// (see Task.WithUserInput); an agent step gets them after its input, as JSON.
	UserInput map[string]any

	// selected are the names of the routes a person chose, for a Router that asked.
	selected []string
	// rejected: a person rejected the Condition this is the input of, whose
	// on_reject is OnRejectElse: it runs its Else steps, whatever If says.
	rejected bool
	// executor continues the step's agent from its pause, when the run was
	// continued with the decisions on it.
	executor *executorResume
	// prevValue is the Go value a function step before this one returned as its
	// StepOutput.Value, which Previous returns without decoding Previous again.
	prevValue any
}

// Output returns the result of the finished step with the given name.
func (in *Input) Output(name string) (run.StepResult, bool) {
	for i := len(in.Outputs) - 1; i >= 0; i-- {
		if in.Outputs[i].StepName == name {
			return in.Outputs[i], true
		}
	}
	return run.StepResult{}, false
}

// State is the session state shared by the steps of a run; it is safe for concurrent
// use by Parallel branches. The zero value is an empty state. With a Recorder that
// keeps sessions, a run starts with the state its session's last run left, and its
// state is saved when it ends, whatever the outcome.
type State struct {
	mu      sync.Mutex
	m       map[string]any
	changed bool // Set or Update was called: the state must be saved
}

// Get returns the value stored under key.
func (s *State) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// Set stores v under key.
func (s *State) Set(key string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]any)
	}
	s.m[key] = v
	s.changed = true
}

// Update calls fn with the state's map under the state's lock, for read-modify-write
// changes that must not interleave with other steps'.
func (s *State) Update(fn func(m map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]any)
	}
	fn(s.m)
	s.changed = true
}

// Changed reports whether a step set or updated the state.
func (s *State) Changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Snapshot returns a copy of the state's map.
func (s *State) Snapshot() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]any, len(s.m))
	for k, v := range s.m {
		m[k] = v
	}
	return m
}

// StepOutput is what a function step returns.
type StepOutput struct {
	Content string
	// Value, when not nil, is the step's structured output: its JSON becomes the
	// step's content (Content must then be empty), marshalled once, and the next
	// step gets the value itself through Previous (an agent step gets the JSON as
	// its input text).
	Value any
	// ContentType names the type of the step's structured output in its result
	// and events: Value's (empty means the name of Value's Go type, or
	// run.ContentTypeJSON for an unnamed type), or, without a Value, that of a
	// Content the step holds as JSON already (empty: Content is text).
	ContentType string
	// Stop ends the workflow after this step, successfully.
	Stop bool
}

// StepFunc is the work of a function step. It must return promptly once ctx is
// cancelled.
type StepFunc func(ctx context.Context, in *Input) (StepOutput, error)

// Task is a step that runs an agent or a function (exactly one of them).
//
// An agent step gives its agent the workflow's input, followed by the previous step's
// content when there is one.
//
// Its zero policies run it once, unbounded. With a Timeout, an attempt that runs
// longer fails with a *run.TimeoutError: the step ends ERROR (a StepError event, its
// agent's run a RunError), never CANCELLED. With a Retry policy, a failed attempt
// that the policy retries is followed by a StepRetried event, a wait, and the step
// run again from its start; the events of each attempt carry its number (attempt),
// and the step's result the number of attempts made. A cancel is never retried, and
// cancels a wait between attempts at once.
type Task struct {
	Name        string
	Description string
	Agent       *agent.Agent
	Func        StepFunc
	// Runner, instead of Agent or Func, runs something else nested (a team).
	Runner Runner
	// Timeout bounds each attempt of the step; zero means no bound.
	Timeout time.Duration
	// Retry says when a failed attempt runs again; nil runs the step once.
	Retry *run.RetryPolicy
	// Pause, when set, makes the step wait for a person before it runs (a
	// top-level step only): see WithConfirmation and WithUserInput.
	Pause *Pause
}

// WithTimeout sets the step's Timeout and returns the step.
func (t *Task) WithTimeout(d time.Duration) *Task {
	t.Timeout = d
	return t
}

// WithRetry sets the step's Retry policy and returns the step.
func (t *Task) WithRetry(p run.RetryPolicy) *Task {
	t.Retry = &p
	return t
}

// AgentStep returns a step that runs agent a.
func AgentStep(name string, a *agent.Agent, description string) *Task {
	return &Task{Name: name, Description: description, Agent: a}
}

// FuncStep returns a step that runs fn.
func FuncStep(name string, fn StepFunc) *Task {
	return &Task{Name: name, Func: fn}
}

func (t *Task) validate(v *validator) error {
	if t == nil {
		return errNilStep
	}
	if err := v.name(t.Name); err != nil {
		return err
	}
	switch {
	case t.Runner != nil && (t.Agent != nil || t.Func != nil):
		return fmt.Errorf("step %q has a runner and an agent or a function", t.Name)
	case t.Runner != nil:
		if err := t.Runner.Validate(); err != nil {
			return fmt.Errorf("step %q: %w", t.Name, err)
		}
	case t.Agent == nil && t.Func == nil:
		return fmt.Errorf("step %q has neither an agent nor a function", t.Name)
	case t.Agent != nil && t.Func != nil:
		return fmt.Errorf("step %q has both an agent and a function", t.Name)
	case t.Agent != nil:
		if err := t.Agent.Validate(); err != nil {
			return fmt.Errorf("step %q: %w", t.Name, err)
		}
	}
	if t.Timeout < 0 {
		return fmt.Errorf("step %q: negative timeout %s", t.Name, t.Timeout)
	}
	if err := t.Retry.Validate(); err != nil {
		return fmt.Errorf("step %q: %w", t.Name, err)
	}
	return t.Pause.check(t.Name, v.nested > 0)
}

func (t *Task) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (res run.StepResult, err error) {
	o := t.started(r, f, i)
	res = run.StepResult{StepID: run.Slug(t.Name), StepName: t.Name, Status: run.StatusCompleted}
	var out StepOutput
	for {
		out, err = t.attempt(ctx, r, o, in, &res.Metrics)
		if errors.Is(err, run.ErrPaused) {
			return res, err // the step's agent waits for a person: the workflow pauses
		}
		if !t.Retry.ShouldRetry(ctx, o.Attempt, err) {
			break
		}
		if o, err = t.retry(ctx, r, o, err); err != nil {
			out = StepOutput{} // cancelled between attempts: no attempt is running
			break
		}
	}
	err = t.finish(ctx, r, o, &res, &out, err)
	return res, err
}

// The parts of Task.execute around its attempts are calls of their own: its frame
// is on the stack of the run's goroutine while the step's agent streams.

// started emits the step's StepStarted and returns its origin.
func (t *Task) started(r *execution, f frame, i int) *run.Origin {
	o := r.stepOrigin(t.Name, i, f)
	if t.Retry != nil {
		o.Attempt = 1
	}
	r.emit(run.EventStepStarted, o, run.Event{})
	return o
}

// retry emits StepRetried for the attempt of origin o that failed with err, waits
// before the next attempt, and returns the next attempt's origin, or why it waited
// in vain.
func (t *Task) retry(ctx context.Context, r *execution, o *run.Origin, err error) (*run.Origin, error) {
	r.emit(run.EventStepRetried, o, run.Event{Error: err.Error()})
	if err := t.Retry.Wait(ctx, o.Attempt); err != nil {
		return o, err
	}
	next := *o // events keep the origin they were emitted with
	next.Attempt++
	return &next, nil
}

// finish completes res with the step's last attempt, which gave out and err, emits
// the step's end, and returns the step's error.
func (t *Task) finish(ctx context.Context, r *execution, o *run.Origin, res *run.StepResult, out *StepOutput, err error) error {
	res.Content, res.ContentType, res.Stop, res.Attempts = out.Content, out.ContentType, out.Stop, o.Attempt
	if err == nil && out.Value != nil {
		res.Content, res.ContentType, err = encodeValue(*out)
	}
	if err != nil {
		if cancelled(ctx, err) {
			res.Status = run.StatusCancelled
			return err // the run's terminal event tells
		}
		res.Status, res.Error = run.StatusError, err.Error()
		r.emit(run.EventStepError, o, run.Event{Error: res.Error})
		return fmt.Errorf("step %q: %w", t.Name, err)
	}
	r.record(*res)
	ev := run.Event{Content: res.Content}
	if res.ContentType != "" {
		ev.Detail = &run.Detail{ContentType: res.ContentType}
	}
	r.emit(run.EventStepCompleted, o, ev)
	r.keepValue(t.Name, out.Value)
	return nil
}

// attempt runs the step once, bounded by its Timeout. An attempt cut short by a
// timeout (its own, or the workflow's) fails with the *run.TimeoutError.
// The metrics of its agent's run are added to used.
func (t *Task) attempt(ctx context.Context, r *execution, o *run.Origin, in *Input, used *run.Metrics) (out StepOutput, err error) {
	actx, cancel := run.ContextWithTimeout(ctx, t.Timeout, "")
	defer cancel()
	if t.Agent != nil || t.Runner != nil {
		out.Content, out.ContentType, err = t.runAgent(actx, r, o, in, used)
	} else {
		out, err = callStep(actx, t.Func, in)
		if err == nil && actx.Err() != nil {
			err = context.Cause(actx)
		}
	}
	if err != nil {
		if te := run.TimedOut(actx); te != nil {
			err = te
		}
	}
	return out, err
}

// runAgent runs the step's agent on in and returns its content and content type;
// it adds the run's metrics to used.
func (t *Task) runAgent(ctx context.Context, r *execution, o *run.Origin, in *Input, used *run.Metrics) (string, string, error) {
	sc := engine.Scope{Registry: r.reg, Log: r.log, Origin: *o}
	sc.Origin.WorkflowRunID = r.base.RunID
	// An agent in a top-level step may pause for a person: the workflow pauses.
	sc.Pausable = o.NestedDepth == 0 && o.ParentStepID == ""
	input, opts := agentInput(r, in)
	out, err := t.nested(ctx, &sc, input, opts...)
	if out == nil {
		return "", "", err
	}
	return t.agentDone(r, out, err, used)
}

// agentDone takes the output of the step's agent's run, which ended with err: it
// adds the run's metrics to the workflow's and to used, and returns the run's
// content and content type, and err.
//
//go:noinline
func (t *Task) agentDone(r *execution, out *run.Output, err error, used *run.Metrics) (string, string, error) {
	if errors.Is(err, run.ErrPaused) && out.Paused != nil {
		r.mu.Lock()
		r.executor = newExecutorPause(t, out)
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.out.Metrics.Add(out.Metrics)
	r.mu.Unlock()
	used.Add(out.Metrics)
	used.Duration += out.Metrics.Duration
	if used.TimeToFirstToken == 0 {
		used.TimeToFirstToken = out.Metrics.TimeToFirstToken
	}
	if out.ContentType == "str" { // Agno's name for text
		return out.Content, "", err
	}
	return out.Content, out.ContentType, err
}

// agentInput returns the input and the options of the run of a step's agent on
// in. A call of its own: runAgent's frame is on the stack of the run's goroutine
// while the agent streams.
//
//go:noinline
func agentInput(r *execution, in *Input) (string, []run.Option) {
	input := in.Input
	if in.Previous != "" {
		input += "\n\nPrevious step output:\n" + in.Previous
	}
	if in.UserInput != nil {
		b, _ := json.Marshal(in.UserInput) // values decoded from JSON always encode
		input += "\n\nUser input:\n" + string(b)
	}
	var opts []run.Option
	if len(r.atts) > 0 && len(in.Outputs) == 0 { // a first step: the attachments are its
		opts = append(opts, agent.WithAttachments(r.atts...))
	}
	if e := in.executor; e != nil {
		opts = append(opts, run.WithID(e.runID), run.WithResume(&run.Resume{Paused: e.paused, Decisions: e.decisions}))
	}
	return input, opts
}

// runAttachments returns the attachments a workflow run's options give it (their
// Extras), checked.
func runAttachments(extras []any) ([]model.Attachment, error) {
	if len(extras) == 0 {
		return nil, nil
	}
	atts := agent.AttachmentsOf(&run.Options{Extras: extras})
	for i := range atts {
		if err := atts[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", err, run.ErrInvalid)
		}
	}
	return atts, nil
}

func callStep(ctx context.Context, fn StepFunc, in *Input) (out StepOutput, err error) {
	return guard(func() (StepOutput, error) { return fn(ctx, in) })
}

// guard calls a user's function, turning a panic into an error, so that a step fails
// cleanly with the results of the steps before it kept.
func guard[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// Steps is a named group of steps run in order.
//
// Like every container, it takes a Timeout and a Retry policy (see Policy).
type Steps struct {
	Name        string
	Description string
	Steps       []Step
	Policy
}

func (s *Steps) validate(v *validator) error {
	if s == nil {
		return errNilStep
	}
	return v.container(s.Name, s.Steps, s.Policy)
}

func (s *Steps) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	return s.Policy.run(ctx, r, f, s.Name, i, func(ctx context.Context, f frame) (run.StepResult, error) { return s.once(ctx, r, f, i, in) })
}

func (s *Steps) once(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	o := r.stepOrigin(s.Name, i, f)
	r.emit(run.EventStepsExecutionStarted, o, run.Event{})
	results, err := r.sequence(ctx, s.Steps, f.child(s.Name), in.previous())
	res := containerResult(ctx, s.Name, results, err)
	if err == nil {
		r.emit(run.EventStepsExecutionCompleted, o, run.Event{})
	}
	return res, err
}

// Parallel runs its steps at once; each sees the same input. The first failure
// cancels the others. Its content joins theirs, in the order the steps are listed.
// A retry runs every branch again.
type Parallel struct {
	Name        string
	Description string
	Steps       []Step
	Policy
}

func (p *Parallel) validate(v *validator) error {
	if p == nil {
		return errNilStep
	}
	return v.container(p.Name, p.Steps, p.Policy)
}

func (p *Parallel) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	return p.Policy.run(ctx, r, f, p.Name, i, func(ctx context.Context, f frame) (run.StepResult, error) { return p.once(ctx, r, f, i, in) })
}

func (p *Parallel) once(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	o := r.stepOrigin(p.Name, i, f)
	r.emit(run.EventParallelExecutionStarted, o, run.Event{Detail: &run.Detail{StepCount: len(p.Steps)}})

	branches, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	child := f.child(p.Name)
	results := make([]run.StepResult, len(p.Steps))
	errs := make([]error, len(p.Steps))
	var wg sync.WaitGroup
	for j, s := range p.Steps {
		wg.Go(func() {
			results[j], errs[j] = safeExecute(branches, s, r, child, j, in)
			if errs[j] != nil {
				cancel(errs[j])
			}
		})
	}
	wg.Wait()

	err := firstFailure(results, errs)
	res := containerResult(ctx, p.Name, results, err)
	res.Content, res.ContentType = joinContents(results), "" // text, whatever the branches'
	if err == nil {
		r.emit(run.EventParallelExecutionCompleted, o, run.Event{Detail: &run.Detail{StepCount: len(p.Steps)}})
	}
	return res, err
}

// safeExecute runs a step in a goroutine of its own, where a panic would otherwise
// take the process down.
func safeExecute(ctx context.Context, s Step, r *execution, f frame, i int, in *Input) (res run.StepResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			res.Status, err = run.StatusError, fmt.Errorf("panic: %v", p)
		}
	}()
	return s.execute(ctx, r, f, i, in)
}

// firstFailure returns the error of the first branch that failed rather than being
// cancelled (the cancels may be its consequence), or else the first error.
func firstFailure(results []run.StepResult, errs []error) error {
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if results[i].Status != run.StatusCancelled {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// Condition runs its steps only when If reports true for the step's input;
// otherwise it runs its Else steps, or, with none, passes the previous step's
// content on.
type Condition struct {
	Name        string
	Description string
	If          func(in *Input) bool // nil: true (for a condition a person confirms)
	Steps       []Step
	Else        []Step // run when If reports false, or when a person rejects with OnRejectElse
	// Pause, when set on a top-level condition, has a person confirm it before
	// it runs (see Condition.WithConfirmation): confirmed, it runs as it would;
	// rejected, its OnReject says what happens (OnRejectElse if empty: the Else
	// steps run, or none).
	Pause *Pause
	Policy
}

// WithConfirmation makes the condition wait for a person's confirmation before it
// runs; onReject says what a rejection does: OnRejectElse (if empty) runs the
// Else steps, OnRejectSkip skips the condition, OnRejectCancel ends the run.
func (c *Condition) WithConfirmation(message string, onReject OnReject) *Condition {
	c.Pause = &Pause{RequiresConfirmation: true, ConfirmationMessage: message, OnReject: cmp.Or(onReject, OnRejectElse)}
	return c
}

func (c *Condition) validate(v *validator) error {
	if c == nil {
		return errNilStep
	}
	if c.If == nil && c.Pause == nil {
		return fmt.Errorf("condition %q has no If function", c.Name)
	}
	if err := c.Pause.checkCondition(c.Name, v.nested > 0); err != nil {
		return err
	}
	if err := v.container(c.Name, c.Steps, c.Policy); err != nil {
		return err
	}
	v.nested++
	defer func() { v.nested-- }()
	return v.steps(c.Else)
}

func (c *Condition) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	return c.Policy.run(ctx, r, f, c.Name, i, func(ctx context.Context, f frame) (run.StepResult, error) { return c.once(ctx, r, f, i, in) })
}

func (c *Condition) once(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	o := r.stepOrigin(c.Name, i, f)
	ok := false
	if !in.rejected {
		var err error
		ok, err = guard(func() (bool, error) { return c.If == nil || c.If(in), nil })
		if err != nil {
			err = fmt.Errorf("condition %q: %w", c.Name, err)
			return containerResult(ctx, c.Name, nil, err), err
		}
	}
	r.emit(run.EventConditionExecutionStarted, o, run.Event{Detail: &run.Detail{ConditionResult: &ok}})
	branch := c.Steps
	if !ok {
		branch = c.Else
	}
	if len(branch) == 0 {
		res := containerResult(ctx, c.Name, nil, nil)
		res.Content, res.ContentType = in.Previous, in.PreviousType
		r.emit(run.EventConditionExecutionCompleted, o, run.Event{})
		return res, nil
	}
	results, err := r.sequence(ctx, branch, f.child(c.Name), in.previous())
	res := containerResult(ctx, c.Name, results, err)
	if err == nil {
		r.emit(run.EventConditionExecutionCompleted, o, run.Event{Detail: &run.Detail{ConditionResult: &ok}})
	}
	return res, err
}

// Loop runs its steps again and again, at most MaxIterations times, until Until
// reports true for the results of an iteration.
type Loop struct {
	Name          string
	Description   string
	Steps         []Step
	MaxIterations int                                 // required: a loop must be bounded
	Until         func(results []run.StepResult) bool // nil: run MaxIterations times
	// Policy bounds and retries the whole loop, all its iterations: a retry starts
	// again from the first iteration.
	Policy
}

func (l *Loop) validate(v *validator) error {
	if l == nil {
		return errNilStep
	}
	if l.MaxIterations <= 0 {
		return fmt.Errorf("loop %q has no bound: set MaxIterations", l.Name)
	}
	return v.container(l.Name, l.Steps, l.Policy)
}

func (l *Loop) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	return l.Policy.run(ctx, r, f, l.Name, i, func(ctx context.Context, f frame) (run.StepResult, error) { return l.once(ctx, r, f, i, in) })
}

func (l *Loop) once(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	o := r.stepOrigin(l.Name, i, f)
	r.emit(run.EventLoopExecutionStarted, o, run.Event{Detail: &run.Detail{MaxIterations: l.MaxIterations}})
	child := f.child(l.Name)
	prev := in.previous()
	var all []run.StepResult
	iterations := 0
	for iterations < l.MaxIterations {
		iterations++
		r.emit(run.EventLoopIterationStarted, o, run.Event{Detail: &run.Detail{Iteration: iterations, MaxIterations: l.MaxIterations}})
		results, err := r.sequence(ctx, l.Steps, child, prev)
		all = append(all, results...)
		if err != nil {
			return containerResult(ctx, l.Name, all, err), err
		}
		r.emit(run.EventLoopIterationCompleted, o, run.Event{Detail: &run.Detail{Iteration: iterations, MaxIterations: l.MaxIterations}})
		prev = lastContent(results)
		if r.stopped() {
			break
		}
		if l.Until != nil {
			until, err := guard(func() (bool, error) { return l.Until(results), nil })
			if err != nil {
				err = fmt.Errorf("loop %q: %w", l.Name, err)
				return containerResult(ctx, l.Name, all, err), err
			}
			if until {
				break
			}
		}
	}
	r.emit(run.EventLoopExecutionCompleted, o, run.Event{Detail: &run.Detail{Iteration: iterations, MaxIterations: l.MaxIterations}})
	return containerResult(ctx, l.Name, all, nil), nil
}

// Router picks, at run time, which of its Choices to run, in order.
type Router struct {
	Name        string
	Description string
	Route       func(in *Input) []Step // must return steps among Choices
	Choices     []Step
	// Ask, when set, has a person choose the route instead of Route (a
	// top-level Router only): the run pauses before the router.
	Ask *RouteQuestion
	Policy
}

func (rt *Router) validate(v *validator) error {
	if rt == nil {
		return errNilStep
	}
	if rt.Route == nil && rt.Ask == nil {
		return fmt.Errorf("router %q has no Route function", rt.Name)
	}
	if rt.Ask != nil && v.nested > 0 {
		return fmt.Errorf("router %q asks a person for its route, which only a top-level router can do", rt.Name)
	}
	return v.container(rt.Name, rt.Choices, rt.Policy)
}

func (rt *Router) execute(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	return rt.Policy.run(ctx, r, f, rt.Name, i, func(ctx context.Context, f frame) (run.StepResult, error) { return rt.once(ctx, r, f, i, in) })
}

func (rt *Router) once(ctx context.Context, r *execution, f frame, i int, in *Input) (run.StepResult, error) {
	o := r.stepOrigin(rt.Name, i, f)
	chosen, err := guard(func() ([]Step, error) {
		if in.selected != nil {
			return rt.byName(in.selected), nil
		}
		return rt.Route(in), nil
	})
	if err != nil {
		err = fmt.Errorf("router %q: %w", rt.Name, err)
		return containerResult(ctx, rt.Name, nil, err), err
	}
	names := make([]string, len(chosen))
	for j, s := range chosen {
		if !slices.Contains(rt.Choices, s) {
			err := fmt.Errorf("router %q chose a step that is not among its choices", rt.Name)
			return containerResult(ctx, rt.Name, nil, err), err
		}
		names[j] = stepName(s)
	}
	r.emit(run.EventRouterExecutionStarted, o, run.Event{Detail: &run.Detail{SelectedSteps: names}})
	results, err := r.sequence(ctx, chosen, f.child(rt.Name), in.previous())
	res := containerResult(ctx, rt.Name, results, err)
	if err == nil {
		r.emit(run.EventRouterExecutionCompleted, o, run.Event{Detail: &run.Detail{SelectedSteps: names}})
	}
	return res, err
}

func (f frame) child(name string) frame {
	return frame{depth: f.depth + 1, parentID: run.Slug(name), attempt: f.attempt}
}

// cancelled tells a step that was cancelled (its context, or its agent's run) from one
// that failed, whatever the failure wraps. A context that a timeout ended did not
// cancel the step: it failed.
func cancelled(ctx context.Context, err error) bool {
	if run.TimedOut(ctx) != nil {
		return false
	}
	return ctx.Err() != nil || errors.Is(err, run.ErrCancelled)
}

// containerResult is a container's result: its steps' results, the last one's content.
func containerResult(ctx context.Context, name string, results []run.StepResult, err error) run.StepResult {
	res := run.StepResult{StepID: run.Slug(name), StepName: name, Steps: results, Status: run.StatusCompleted}
	for i := range results {
		res.Metrics.Add(results[i].Metrics)
	}
	if len(results) > 0 {
		last := results[len(results)-1]
		res.Content, res.ContentType = last.Content, last.ContentType
	}
	switch {
	case err == nil:
	case cancelled(ctx, err):
		res.Status = run.StatusCancelled
	default:
		res.Status, res.Error = run.StatusError, err.Error()
	}
	return res
}

func stepName(s Step) string {
	switch s := s.(type) {
	case *Task:
		return s.Name
	case *Steps:
		return s.Name
	case *Parallel:
		return s.Name
	case *Condition:
		return s.Name
	case *Loop:
		return s.Name
	case *Router:
		return s.Name
	}
	return ""
}

// children returns the steps a container holds (a Router's choices); none for a Task.
func children(s Step) []Step {
	switch s := s.(type) {
	case *Steps:
		return s.Steps
	case *Parallel:
		return s.Steps
	case *Condition:
		return append(s.Steps[:len(s.Steps):len(s.Steps)], s.Else...)
	case *Loop:
		return s.Steps
	case *Router:
		return s.Choices
	}
	return nil
}

// validator checks a tree of steps; step names must be unique in the whole tree,
// since they identify steps in events and stored results.
type validator struct {
	seen   map[string]string // step id → step name
	nested int               // how many containers the steps validated sit in
}

func (v *validator) name(name string) error {
	if name == "" {
		return errors.New("a step has no name")
	}
	id := run.Slug(name)
	if other, dup := v.seen[id]; dup {
		if other == name {
			return fmt.Errorf("duplicate step name %q", name)
		}
		return fmt.Errorf("step names %q and %q give the same step id %q", other, name, id)
	}
	v.seen[id] = name
	return nil
}

func (v *validator) container(name string, steps []Step, p Policy) error {
	if err := v.name(name); err != nil {
		return err
	}
	if err := p.check(name); err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("step %q has no steps", name)
	}
	v.nested++
	defer func() { v.nested-- }()
	return v.steps(steps)
}

var errNilStep = errors.New("a step is nil")

func (v *validator) steps(steps []Step) error {
	for _, s := range steps {
		if s == nil {
			return errNilStep
		}
		if err := s.validate(v); err != nil {
			return err
		}
	}
	return nil
}
