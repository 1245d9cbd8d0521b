// Package workflow runs workflows: steps (agents, functions, and containers of steps)
// executed in order, each seeing the workflow's input and what earlier steps produced,
// the whole run visible as one stream of events and cancellable at any moment.
package workflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// Workflow is a named sequence of steps. Build it as a struct literal; a Workflow may
// run many times at once.
type Workflow struct {
	// ID identifies the workflow in events and routes; it defaults to a slug of Name.
	ID          string
	Name        string
	Description string
	Steps       []Step
	// Registry is where the workflow's runs, and the agent runs inside them, can be
	// cancelled. Share one with the servers that must cancel them; nil means a
	// registry of the workflow's own.
	Registry *run.Registry
	// Recorder persists the workflow's runs (see store.Recorder); nil keeps them in
	// memory only. A Recorder that is also a run.Checkpointer keeps the results of
	// the top-level steps as each one completes, so that a run left behind by a
	// process that died can be resumed after them (see run.WithResume).
	Recorder run.Recorder
	// NotResumable: a run of this workflow that a process which died left behind
	// ends ERROR "interrupted" instead of being resumed on another process (for
	// workflows whose steps must not run twice). The runtime itself does nothing
	// with it; a server that takes over runs left behind reads it.
	NotResumable bool
	// Timeout bounds a run of the workflow: once it has passed, the step running
	// fails and the run ends ERROR with a *run.TimeoutError (matching run.ErrTimeout),
	// not CANCELLED. Zero means no bound. A resumed run has the whole Timeout again.
	Timeout time.Duration
	// Budget bounds the tokens of a run of the workflow, all its agent steps
	// together (see agent.Agent's Budget): once over it, the step running fails and
	// the run ends ERROR with a *run.BudgetError. Zero means no bound.
	Budget int

	once sync.Once
	reg  *run.Registry
}

// WorkflowID returns the workflow's ID: ID, or a slug of Name.
func (w *Workflow) WorkflowID() string {
	if w.ID != "" {
		return w.ID
	}
	return run.Slug(w.Name)
}

func (w *Workflow) registry() *run.Registry {
	if w.Registry != nil {
		return w.Registry
	}
	w.once.Do(func() { w.reg = new(run.Registry) })
	return w.reg
}

// Validate reports what makes the workflow unable to run: no steps, duplicate step
// names, a step with neither agent nor function, a Loop without a bound, an invalid
// agent. Run, Stream and Start call it before anything starts.
func (w *Workflow) Validate() error {
	name := w.Name
	if name == "" {
		name = w.ID
	}
	if len(w.Steps) == 0 {
		return fmt.Errorf("workflow %q: no steps: %w", name, run.ErrInvalid)
	}
	if w.Timeout < 0 {
		return fmt.Errorf("workflow %q: negative timeout %s: %w", name, w.Timeout, run.ErrInvalid)
	}
	if w.Budget < 0 {
		return fmt.Errorf("workflow %q: negative budget %d: %w", name, w.Budget, run.ErrInvalid)
	}
	v := validator{seen: make(map[string]string)}
	if err := v.steps(w.Steps); err != nil {
		return fmt.Errorf("workflow %q: %w: %w", name, err, run.ErrInvalid)
	}
	return nil
}

// Run runs the workflow on input and returns its output once it has ended. The error
// is nil when the run completed; for a cancelled run it matches run.ErrCancelled, and
// the output still holds what the run produced until then.
func (w *Workflow) Run(ctx context.Context, input string, opts ...run.Option) (*run.Output, error) {
	return engine.Result(w.Start(ctx, input, opts...))
}

// Stream runs the workflow on input and yields its events as they happen, those of
// the agents inside its steps included, ending with the run's one terminal event
// (WorkflowCompleted, WorkflowCancelled or WorkflowError). The error is not nil only
// when the run could not start. Breaking out of the loop cancels the run.
func (w *Workflow) Stream(ctx context.Context, input string, opts ...run.Option) iter.Seq2[*run.Event, error] {
	return func(yield func(*run.Event, error) bool) {
		x, err := w.Start(ctx, input, opts...)
		engine.Events(x, err, yield)
	}
}

// Start starts a run in the background and returns at once; the returned Exec gives
// its events and output. Cancelling ctx cancels the run.
//
// With run.WithResume, the run continues a stored one: its events are numbered from
// Resume.NextEvent, WorkflowStarted is emitted only when that is 0, and the run goes
// on with the top-level step after the finished ones in Resume.Steps, which are not
// run again: their results come first in the run's step results, the next step sees
// the last one's content as its Previous, and every step sees them in its Outputs.
func (w *Workflow) Start(ctx context.Context, input string, opts ...run.Option) (*run.Exec, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	c := engine.Component{Kind: run.KindWorkflow, ID: w.WorkflowID(), Name: w.Name, Registry: w.registry(), Recorder: w.Recorder}
	return engine.Start(ctx, c, input, opts, func(o run.Options, base *run.Event, out *run.Output) (func(engine.Run) error, error) {
		if err := w.checkResume(o.Resume); err != nil {
			return nil, err
		}
		atts, err := runAttachments(o.Extras)
		if err != nil {
			return nil, fmt.Errorf("workflow %q: %w", cmp.Or(w.Name, w.ID), err)
		}
		sessionID, resume := o.SessionID, o.Resume
		if resume != nil {
			// What the run has produced so far, should it end before its steps go
			// on (cancelled before it starts here): the finished steps' results and
			// the interrupted step's text, as execute would leave them.
			out.StepResults = resume.Steps
			last := lastContent(resume.Steps)
			out.Content, out.ContentType = last.Content, last.ContentType
			if resume.Partial != "" {
				out.Content, out.ContentType = resume.Partial, ""
			}
		}
		return func(er engine.Run) error { return w.run(er, base, input, out, atts, sessionID, resume) }, nil
	})
}

// run is the work of a top-level run of the workflow: its steps, after the
// finished ones of the stored run rs continues (nil for a new run), with the
// session's state when the run is in a session and the Recorder keeps sessions.
func (w *Workflow) run(er engine.Run, base *run.Event, input string, out *run.Output, atts []model.Attachment, sessionID string, rs *run.Resume) error {
	x := er.X
	r := &execution{log: er.Log, reg: w.registry(), base: base, input: input, out: out, state: new(State), x: x, atts: atts}
	r.checkpointer, _ = w.Recorder.(run.Checkpointer)
	sessions, _ := w.Recorder.(run.Sessions)
	if sessions == nil || sessionID == "" {
		return w.execute(er.Ctx(), r, rs)
	}
	var m map[string]any
	var err error
	engine.Apart(func() { m, err = sessions.LoadState(er.Ctx(), sessionID) }) // a store's deep stack, not the run's
	if err != nil {
		return err
	}
	r.state.m = m
	err = w.execute(er.Ctx(), r, rs)
	if r.state.Changed() {
		// Saved whatever the outcome: what the steps wrote before a cancel stays.
		// Only when written: this write delays the run's terminal event.
		serr := sessions.SaveState(context.WithoutCancel(er.Ctx()), sessionID, x, r.state.Snapshot())
		err = errors.Join(err, serr)
	}
	return err
}

// execute runs the workflow's steps in r, after the finished ones of the stored run
// rs continues (nil for a new run), bounded by the workflow's Timeout, and leaves
// what they produced in r.out.
func (w *Workflow) execute(ctx context.Context, r *execution, rs *run.Resume) error {
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = w.withTimeout(ctx)
		defer cancel()
	}
	ctx, done, err := w.begin(ctx, r, rs)
	results := done
	if err == nil {
		results, err = r.top(ctx, w.Steps, done)
	}
	w.end(r, rs, done, results, err)
	return err
}

// The parts of execute around its steps are calls of their own: its frame is on
// the stack of the run's goroutine under every step it runs.

// withTimeout bounds ctx by the workflow's Timeout.
func (w *Workflow) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return run.ContextWithTimeout(ctx, w.Timeout, fmt.Sprintf("workflow %q", cmp.Or(w.Name, w.ID)))
}

// begin prepares r to run the steps after the finished ones of the stored run rs
// continues (nil for a new run), which it returns, charges the workflow's budget
// with what they spent, and emits WorkflowStarted for a new run.
func (w *Workflow) begin(ctx context.Context, r *execution, rs *run.Resume) (_ context.Context, done []run.StepResult, err error) {
	var spent run.Metrics // by the finished steps of the run continued
	if rs != nil {
		done, r.decisions, r.paused = rs.Steps, rs.StepDecisions, rs.Paused
		r.out.StepRequirements, r.out.Paused = nil, nil
		for i := range done {
			spent.Add(done[i].Metrics)
		}
		r.out.Metrics.Add(spent)
	}
	if w.Budget > 0 {
		b := run.NewBudget(run.BudgetFrom(ctx), fmt.Sprintf("workflow %q", cmp.Or(w.Name, w.ID)), w.Budget)
		ctx = run.ContextWithBudget(ctx, b)
		err = b.Charge(spent.Tokens()) // spent before the run was resumed
	}
	if rs == nil || rs.NextEvent == 0 {
		r.emit(run.EventWorkflowStarted, r.base.Origin, run.Event{}) // else it is stored already
	}
	if rs != nil && rs.NextEvent > 0 && len(done) < len(w.Steps) && (len(rs.Open) > 0 || rs.Partial != "") {
		r.interrupted(w.Steps[len(done)], len(done), rs.Open)
	}
	return ctx, done, err
}

// end leaves in r.out the results of the steps, which ended with err.
func (w *Workflow) end(r *execution, rs *run.Resume, done, results []run.StepResult, err error) {
	r.out.StepResults = results
	// A structured last step makes the run's content structured: its JSON, typed.
	last := lastContent(results)
	r.out.Content, r.out.ContentType = last.Content, last.ContentType
	if err != nil && rs != nil && rs.Partial != "" && (len(results) == len(done) || results[len(done)].Content == "") {
		// Ended before the interrupted step streamed anything anew: what it had
		// streamed before its process died is the run's last output.
		r.out.Content, r.out.ContentType = rs.Partial, ""
	}
}

// runNested runs the workflow inside another run (an agent's tool call): its events
// go to the scope's log, with a run ID of its own and the scope's ParentRunID, and
// it can be cancelled through the scope's registry as well as through ctx. It
// returns once the run has ended, as Run does: its output and its outcome as an
// error; a nil output when the run could not start.
func (w *Workflow) runNested(ctx context.Context, sc *engine.Scope, input string) (*run.Output, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	base := &run.Event{RunID: run.NewID(), Origin: &run.Origin{
		WorkflowID: w.WorkflowID(), WorkflowName: w.Name,
		SessionID: sc.Origin.SessionID, UserID: sc.Origin.UserID, ParentRunID: sc.Origin.ParentRunID,
	}}
	out := w.newOutput(base, input)
	reg := sc.Registry
	if reg == nil {
		reg = w.registry()
	}
	r := &execution{log: sc.Log, reg: reg, base: base, input: input, out: out, state: new(State)}
	spec := engine.Spec{Registry: reg, Base: base, Kind: run.KindWorkflow, Output: out}
	return engine.Nested(ctx, spec, sc.Log, nil, func(ctx context.Context) error { return w.execute(ctx, r, nil) })
}

// newOutput returns the output of a run whose events are built on base, on input.
func (w *Workflow) newOutput(base *run.Event, input string) *run.Output {
	return &run.Output{
		RunID: base.RunID, SessionID: base.SessionID, UserID: base.UserID, ParentRunID: base.ParentRunID,
		WorkflowID: base.WorkflowID, WorkflowName: base.WorkflowName,
		Status: run.StatusRunning, Input: input, CreatedAt: time.Now().Unix(),
	}
}

// checkResume reports what keeps the workflow from continuing the stored run rs
// describes: a negative event index, more finished steps than the workflow has, or
// finished steps that are not the workflow's first ones, completed.
func (w *Workflow) checkResume(rs *run.Resume) error {
	if rs == nil {
		return nil
	}
	name := w.Name
	if name == "" {
		name = w.ID
	}
	if rs.NextEvent < 0 {
		return fmt.Errorf("workflow %q: cannot resume at event index %d: %w", name, rs.NextEvent, run.ErrInvalid)
	}
	if len(rs.Steps) > len(w.Steps) {
		return fmt.Errorf("workflow %q: cannot resume after %d finished steps: the workflow has only %d: %w",
			name, len(rs.Steps), len(w.Steps), run.ErrInvalid)
	}
	for i, res := range rs.Steps {
		if want := stepName(w.Steps[i]); res.StepName != want {
			return fmt.Errorf("workflow %q: cannot resume: finished step %d is %q, but the workflow's step %d is %q: %w",
				name, i, res.StepName, i, want, run.ErrInvalid)
		}
		if res.Status != run.StatusCompleted {
			return fmt.Errorf("workflow %q: cannot resume after step %q: its status is %s, not %s: %w",
				name, res.StepName, res.Status, run.StatusCompleted, run.ErrInvalid)
		}
	}
	return nil
}

// CancelRun cancels the workflow's run with the given ID (or an agent run inside one)
// and waits until it has ended (or ctx is done); see run.Registry.Cancel for what it
// returns.
func (w *Workflow) CancelRun(ctx context.Context, runID string) (run.Status, error) {
	return w.registry().Cancel(ctx, runID, run.ReasonRequested)
}

// execution is one run of a workflow.
type execution struct {
	log   *engine.Log
	reg   *run.Registry
	base  *run.Event
	input string
	out   *run.Output
	state *State
	x     *run.Exec
	// checkpointer keeps the results of the top-level steps as they complete; nil
	// when the workflow's Recorder is not a run.Checkpointer.
	checkpointer run.Checkpointer
	// atts are the run's attachments (agent.WithAttachments), given to the agent
	// steps that start before any step has finished.
	atts []model.Attachment

	mu       sync.Mutex       // guards finished and stop
	finished []run.StepResult // every leaf step finished so far, in order
	stop     bool             // a step asked the workflow to end
	// decisions are those on the step a run continued from a pause waits at,
	// and paused the pause it continues from.
	decisions []run.StepRequirement
	paused    *run.Paused
	// executor is the pause of the agent of a top-level step, once it paused.
	executor *executorPause
	// values are the StepOutput.Values of the function steps that returned one, by
	// step name, the last one's for a step that ran more than once (in a Loop).
	values map[string]any
}

// frame is where a list of steps sits in the workflow's tree.
type frame struct {
	depth    int
	parentID string
	// attempt is that of the innermost container with a retry policy around the
	// steps, which their events carry (a Task's own retry policy numbers its own).
	attempt int
}

// checkpointTimeout bounds a checkpoint, which a cancel of the run does not interrupt.
const checkpointTimeout = 30 * time.Second

// top runs the workflow's top-level steps after done, the results of those that a
// run it continues finished (see run.Resume). Once a step completes and before the
// next one starts, it has the checkpointer keep the results so far; a checkpoint
// that fails ends the run with its error. It returns the results of every top-level
// step, done's first, the last one possibly partial.
func (r *execution) top(ctx context.Context, steps []Step, done []run.StepResult) (results []run.StepResult, err error) {
	// Made at the first result, with room for every step's: a run in its first
	// step holds none. Never nil once returned.
	defer func() {
		if results == nil {
			results = []run.StepResult{}
		}
	}()
	if len(done) > 0 {
		results = append(make([]run.StepResult, 0, len(steps)), done...)
	}
	prev := len(done) - 1 // the result the next step follows, if any
	for i := range done {
		r.recordLeaves(steps[i], &done[i])
	}
	for i := len(done); i < len(steps) && !r.stopped(); i++ {
		if ctx.Err() != nil {
			return results, context.Cause(ctx)
		}
		in := r.inputAfter(results, prev)
		switch next, err := r.decide(steps[i], i, in, &results, prev); next {
		case stepStop:
			return results, err
		case stepSkip:
			continue
		}
		res, err := steps[i].execute(ctx, r, frame{}, i, in)
		if errors.Is(err, run.ErrPaused) {
			return results, r.pauseExecutor(steps[i], i)
		}
		if results == nil {
			results = make([]run.StepResult, 0, len(steps)-i)
		}
		results = append(results, res)
		if err != nil {
			return results, err
		}
		prev = len(results) - 1
		if r.checkpointer != nil && i+1 < len(steps) && ctx.Err() == nil && !r.stopped() {
			if err := r.checkpoint(ctx, results); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

// inputAfter is inputFor the result at index prev of results (none if prev < 0).
//
//go:noinline
func (r *execution) inputAfter(results []run.StepResult, prev int) *Input {
	if prev < 0 {
		return r.inputFor(run.StepResult{})
	}
	return r.inputFor(results[prev])
}

// What top does with a step once its pause, if any, is decided (see decide).
const (
	stepRun  = iota // the step runs
	stepSkip        // the step is skipped: its result is given
	stepStop        // the run stops: it pauses, or the step was rejected
)

// decide applies to step s, the top-level step i about to run on in, the decision a
// person made on its pause (a pause still to decide stops the run there) or on its
// executor's input. A call of its own, out of top's frame: top's frame is on the
// stack of the run's goroutine under every step it runs.
// A skipped step's result is appended to *results; prev is the index in it of the
// result the step follows (none if < 0).
func (r *execution) decide(s Step, i int, in *Input, results *[]run.StepResult, prev int) (next int, err error) {
	if req, p, ok := waits(s, i); ok {
		d, decided := r.decision(i)
		if !decided {
			return stepStop, r.pauseAt(s, i, req, p)
		}
		name := stepName(s)
		r.emit(run.EventStepContinued, r.stepOrigin(name, i, frame{}), run.Event{})
		rejected := d.RequiresConfirmation && (d.Confirmed == nil || !*d.Confirmed)
		if _, cond := s.(*Condition); rejected && cond && d.OnReject == string(OnRejectElse) {
			in.rejected, rejected = true, false // the condition runs its Else steps
		}
		if rejected {
			if d.OnReject != string(OnRejectSkip) {
				return stepStop, &run.CancelledError{RunID: r.base.RunID, Reason: fmt.Sprintf("step %q rejected", name)}
			}
			// Skipped: the next step sees the previous one's content.
			var content, contentType string
			if prev >= 0 {
				content, contentType = (*results)[prev].Content, (*results)[prev].ContentType
			}
			*results = append(*results, run.StepResult{StepID: run.Slug(name), StepName: name, Status: run.StatusCompleted,
				Content: content, ContentType: contentType})
			return stepSkip, nil
		}
		in.UserInput, in.selected = d.UserInput, d.SelectedChoices
	} else if d, decided := r.decision(i); decided && d.RequiresExecutorInput {
		if in.executor, err = r.executorResume(d); err != nil {
			return stepStop, err
		}
		r.emit(run.EventStepContinued, r.stepOrigin(stepName(s), i, frame{}), run.Event{})
	}
	return stepRun, nil
}

// checkpoint has the checkpointer keep results, with a context that the run's cancel
// does not cancel, so that a cancel does not cut a checkpoint under way short;
// checkpointTimeout bounds it instead.
func (r *execution) checkpoint(ctx context.Context, results []run.StepResult) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
	defer cancel()
	if err := r.checkpointer.Checkpoint(ctx, r.x, results[:len(results):len(results)]); err != nil {
		return fmt.Errorf("checkpoint after step %q: %w", results[len(results)-1].StepName, err)
	}
	return nil
}

// recordLeaves records the completed agent and function steps inside res, the
// result of step s that a run this one continues finished, as if this run had run
// them: later steps see them in their Input's Outputs.
func (r *execution) recordLeaves(s Step, res *run.StepResult) {
	if _, ok := s.(*Task); ok {
		if res.Status == run.StatusCompleted {
			r.record(*res)
		}
		return
	}
	kids := children(s)
	for j := range res.Steps {
		for _, k := range kids {
			if stepName(k) == res.Steps[j].StepName {
				r.recordLeaves(k, &res.Steps[j])
				break
			}
		}
	}
}

// sequence runs steps one after the other, each given the previous one's content,
// the first one prev's. It returns the results of the steps it ran, the last one
// possibly partial.
func (r *execution) sequence(ctx context.Context, steps []Step, f frame, prev run.StepResult) ([]run.StepResult, error) {
	results := make([]run.StepResult, 0, len(steps))
	for i, s := range steps {
		if ctx.Err() != nil {
			// A step that returned just as the cancel came ends without error: no
			// later step may start.
			return results, context.Cause(ctx)
		}
		res, err := s.execute(ctx, r, f, i, r.inputFor(prev))
		results = append(results, res)
		if err != nil {
			return results, err
		}
		prev = res
		if r.stopped() {
			break
		}
	}
	return results, nil
}

// lastContent returns the result whose content is what a list of steps produced:
// the last step's, or, when that step failed or was cancelled before it produced
// any, the step's before it; the zero result when none produced any.
func lastContent(results []run.StepResult) run.StepResult {
	for i := len(results) - 1; i >= 0; i-- {
		if res := results[i]; res.Content != "" || res.Status == run.StatusCompleted {
			return res
		}
	}
	return run.StepResult{}
}

// inputFor returns the input of a step that follows the one whose result is prev
// (the zero result for a first step).
func (r *execution) inputFor(prev run.StepResult) *Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := &Input{Input: r.input, Previous: prev.Content, PreviousType: prev.ContentType, Outputs: r.finished[:len(r.finished):len(r.finished)], State: r.state}
	if prev.ContentType != "" && r.values != nil {
		in.prevValue = r.values[lastLeaf(prev).StepName]
	}
	return in
}

// keepValue keeps v, the StepOutput.Value the function step named name returned,
// for the step after it (see Previous); a nil v forgets the value an earlier run of
// the step (in a Loop) returned. Text steps cost nothing here.
func (r *execution) keepValue(name string, v any) {
	if v == nil {
		r.mu.Lock()
		if r.values != nil {
			delete(r.values, name)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.values == nil {
		r.values = make(map[string]any)
	}
	r.values[name] = v
}

func (r *execution) record(res run.StepResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, res)
	if res.Stop {
		r.stop = true
	}
}

func (r *execution) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop
}

// stepOrigin returns the origin of the events of the step named name at index i of
// frame f.
func (r *execution) stepOrigin(name string, i int, f frame) *run.Origin {
	o := *r.base.Origin
	o.StepName, o.StepID = name, run.Slug(name)
	o.StepIndex = &i
	o.ParentStepID, o.NestedDepth, o.Attempt = f.parentID, f.depth, f.attempt
	return &o
}

// interruptedReason is the error that marks a step whose process died mid-step.
const interruptedReason = "interrupted: the process running the step died; it runs again from its start"

// interrupted marks, on a run resumed after its process died, step s (the i-th),
// which was running then: each of its agents' runs that never ended (open) ends
// with RunError, and StepRetried says the step runs again from its start, so that
// a client drops the text it had streamed.
func (r *execution) interrupted(s Step, i int, open []string) {
	o := r.stepOrigin(stepName(s), i, frame{})
	for _, id := range open {
		ro := *o
		ro.WorkflowRunID = r.base.RunID
		r.log.Emit(&run.Event{Event: run.EventRunError, RunID: id, Origin: &ro, Error: interruptedReason})
	}
	r.emit(run.EventStepRetried, o, run.Event{Error: interruptedReason})
}

// emit emits ev as an event of type t from origin o.
func (r *execution) emit(t run.EventType, o *run.Origin, ev run.Event) {
	ev.Event, ev.RunID, ev.Origin = t, r.base.RunID, o
	r.log.Emit(&ev)
}

// joinContents joins the contents of parallel results under their step names.
func joinContents(results []run.StepResult) string {
	var b strings.Builder
	for i, res := range results {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString("## ")
		b.WriteString(res.StepName)
		b.WriteString("\n")
		b.WriteString(res.Content)
	}
	return b.String()
}
