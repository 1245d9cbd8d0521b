package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kern-dev/kern/run"
)

// End decides how the run ended (see Finish), completes out with its status, reason,
// error and duration, and emits the run's one terminal event to log, built on base.
// It does not Close the entry: a caller closes it once the event is out.
func (e *Entry) End(log *Log, base *run.Event, kind run.Kind, out *run.Output, err error) {
	st, reason := e.Finish(err)
	out.Status = st
	runErr := e.Err(err)
	setErr(out, runErr)
	if st == run.StatusError {
		err = runErr
	}
	out.Metrics.Duration = time.Since(e.started)
	ev := new(run.Event)
	*ev = *base
	ev.Event = kind.TerminalEvent(st)
	switch st {
	case run.StatusCompleted:
		ev.Content = out.Content
		m := out.Metrics
		ev.Metrics = &m
		if kind == run.KindWorkflow {
			ev.Detail = &run.Detail{StepResults: out.StepResults}
		}
		if out.ContentType != "" {
			if ev.Detail == nil {
				ev.Detail = &run.Detail{}
			}
			ev.Detail.ContentType = out.ContentType
		}
	case run.StatusCancelled:
		out.Reason = reason
		ev.Reason = reason
	case run.StatusError:
		out.Error = err.Error()
		ev.Error = out.Error
		ev.Content = out.Error // Agno's RunError carries the message as content
	case run.StatusPaused:
		ev.Content = out.Content
		ev.Detail = &run.Detail{Tools: out.Tools, Requirements: out.Requirements, StepRequirements: out.StepRequirements}
		if kind == run.KindWorkflow {
			ev.Detail.StepResults = out.StepResults
			if len(out.StepRequirements) > 0 {
				i := out.StepRequirements[0].StepIndex
				ev.Detail.StepPause = &run.StepPause{Status: run.StatusPaused, PausedStepIndex: &i, PausedStepName: out.StepRequirements[0].StepName}
			}
		}
	}
	log.Emit(ev)
	if st == run.StatusPaused && out.Paused != nil {
		out.Paused.NextEvent = ev.EventIndex + 1
	}
}

// Spec is what Go needs to start a top-level run.
type Spec struct {
	Registry *run.Registry
	Recorder run.Recorder // nil: the run is not persisted
	Base     *run.Event   // the run's ID and Origin, on which its terminal event is built
	Kind     run.Kind
	Output   *run.Output // filled in as the run goes; its identity fields set
	Resume   *run.Resume // set when the run continues a stored run
	// Pausable lets a nested run end PAUSED (see Scope.Pausable); otherwise one
	// that would fails with ErrNestedPause.
	Pausable bool
}

// Run is a top-level run as the work it does sees it: its handle, its entry in its
// registry (whose Ctx is the run's context), and the write side of its log.
type Run struct {
	X     *run.Exec
	Entry *Entry
	Log   *Log
}

// Ctx returns the run's context: cancelled when the run is cancelled.
func (r Run) Ctx() context.Context { return r.Entry.Ctx }

// EntryOf returns the entry of the top-level run x in its registry.
func EntryOf(x *run.Exec) *Entry {
	e, _ := entryOf(x).(*Entry)
	return e
}

// Go starts a top-level run. body does the work, emitting events to r.Log with
// r.Ctx() as its context, and returns an error; Go then ends the run with its
// terminal event, closes its log and has the recorder persist its end before the run
// counts as ended. A panic in body ends the run ERROR. Cancelling ctx cancels the
// run, like run.Registry.Cancel; ctx's values reach body.
func Go(ctx context.Context, spec Spec, body func(r Run) error) (*run.Exec, error) {
	base, out := spec.Base, spec.Output
	x, l := newExec(base.RunID, spec.Kind, out, spec.Resume)
	log := (*Log)(l)
	if spec.Resume != nil {
		log.StartAt(spec.Resume.NextEvent)
	}
	e, err := Begin(spec.Registry, context.WithoutCancel(ctx), x.ID, log.Stop)
	if err != nil {
		return nil, err
	}
	started(x, e)
	if spec.Recorder != nil {
		if err := spec.Recorder.Begin(ctx, x); err != nil {
			e.Finish(err)
			e.Close()
			return nil, fmt.Errorf("run %s: %w", x.ID, err)
		}
	}
	g := &goRun{ctx: ctx, spec: spec, x: x, e: e, log: log, body: body}
	g.fired.Add(1)
	g.stop = context.AfterFunc(ctx, g.cancel)
	if ctx.Err() != nil {
		g.cancelNow() // at once: AfterFunc's goroutine may come after a short run's end
	}
	go g.run()
	return x, nil
}

// goRun is what the goroutine of a run Go started needs, in one object: a run
// holds it, and the AfterFunc that cancels the run with ctx, for its whole life.
type goRun struct {
	ctx   context.Context
	spec  Spec
	x     *run.Exec
	e     *Entry
	log   *Log
	body  func(Run) error
	stop  func() bool    // stops the AfterFunc
	fired sync.WaitGroup // done once the AfterFunc ran, or was stopped
}

// cancel is the AfterFunc: ctx was cancelled.
func (g *goRun) cancel() {
	g.cancelNow()
	g.fired.Done()
}

func (g *goRun) cancelNow() {
	cause := context.Cause(g.ctx)
	g.e.CancelCause(cause.Error(), cause)
}

func (g *goRun) run() {
	var persistErr error
	x, e, log, spec := g.x, g.e, g.log, &g.spec
	defer func() { ended(x, persistErr) }()
	body := g.body
	g.body = nil // what it captured goes once it no longer needs it, not with the run
	err := call(body, Run{X: x, Entry: e, Log: log})
	if g.stop() {
		g.fired.Done()
	}
	g.fired.Wait() // no goroutine of the run outlives it
	e.End(log, spec.Base, spec.Kind, spec.Output, err)
	log.Close()
	if spec.Recorder != nil {
		// The end is durable before the run counts as ended: a cancel that waits
		// for it, or a reader of the store, sees the final state.
		persistErr = spec.Recorder.End(context.WithoutCancel(g.ctx), x)
	}
	e.Close()
}

// ErrNestedPause is the error of a run nested in another that would pause for a
// person where it cannot (an agent called as a tool, an agent in a step inside a
// container): only top-level runs and the agents of a workflow's top-level steps
// pause.
var ErrNestedPause = errors.New("a run inside a container step or a tool call cannot pause for a person")

// Nested runs a run nested in another one (an agent in a workflow step, an agent or
// a workflow given as a tool) on the calling goroutine, through the lifecycle Go
// gives a top-level run: Begin registers it in spec.Registry (a cancel intent kept
// for its id applies; onCancel, if set, runs when a cancel is requested), body does
// the work under the run's context, a panic in body ends the run ERROR, End emits
// its one terminal event to log, and Close ends its registration. A nested run has
// no recorder of its own: its events are the top-level run's.
//
// It returns the run's output and its outcome as Output.Err gives it: nil when it
// completed, an error matching run.ErrCancelled when it was cancelled. An error and
// a nil output mean the run did not start.
func Nested(ctx context.Context, spec Spec, log *Log, onCancel func(), body func(ctx context.Context) error) (*run.Output, error) {
	base, out := spec.Base, spec.Output
	if log == nil {
		return nil, fmt.Errorf("run %s: nested run without a log: %w", base.RunID, run.ErrInvalid)
	}
	e, err := Begin(spec.Registry, ctx, base.RunID, onCancel)
	if err != nil {
		return nil, err
	}
	err = call(func(r Run) error { return body(r.Entry.Ctx) }, Run{Entry: e, Log: log})
	if errors.Is(err, run.ErrPaused) && !spec.Pausable {
		// Only a top-level run is kept as a row to continue: a nested one fails.
		out.Tools, out.Requirements, out.StepRequirements, out.Paused = nil, nil, nil, nil
		err = fmt.Errorf("run %s: %w", base.RunID, ErrNestedPause)
	}
	e.End(log, base, spec.Kind, out, err)
	e.Close()
	return out, out.Err()
}

func call(body func(Run) error, r Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return body(r)
}
