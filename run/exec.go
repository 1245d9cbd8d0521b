package run

import (
	"context"
	"fmt"
	"time"
)

// Kind says what ran: an agent or a workflow. It picks a run's terminal events, and
// its values are the names stores and the HTTP API use ("agent", "workflow").
type Kind string

// Kinds of run.
const (
	KindAgent    Kind = "agent"
	KindWorkflow Kind = "workflow"
)

// TerminalEvent returns the event type that ends a run of this kind in status st.
func (k Kind) TerminalEvent(st Status) EventType {
	switch {
	case k == KindWorkflow && st == StatusCompleted:
		return EventWorkflowCompleted
	case k == KindWorkflow && st == StatusCancelled:
		return EventWorkflowCancelled
	case k == KindWorkflow:
		return EventWorkflowError
	case st == StatusCompleted:
		return EventRunCompleted
	case st == StatusCancelled:
		return EventRunCancelled
	}
	return EventRunError
}

// End decides how the run ended (see Finish), completes out with its status, reason,
// error and duration, and emits the run's one terminal event to log, built on base.
// It does not Close the entry: a caller closes it once the event is out.
func (e *Entry) End(log *Log, base *Event, kind Kind, out *Output, err error) {
	st, reason := e.Finish(err)
	out.Status = st
	out.err = e.Err(err)
	if st == StatusError {
		err = out.err
	}
	out.Metrics.Duration = time.Since(e.started)
	ev := new(Event)
	*ev = *base
	ev.Event = kind.TerminalEvent(st)
	switch st {
	case StatusCompleted:
		ev.Content = out.Content
		m := out.Metrics
		ev.Metrics = &m
		if kind == KindWorkflow {
			ev.Detail = &Detail{StepResults: out.StepResults}
		}
		if out.ContentType != "" {
			if ev.Detail == nil {
				ev.Detail = &Detail{}
			}
			ev.Detail.ContentType = out.ContentType
		}
	case StatusCancelled:
		out.Reason = reason
		ev.Reason = reason
	case StatusError:
		out.Error = err.Error()
		ev.Error = out.Error
		ev.Content = out.Error // Agno's RunError carries the message as content
	}
	log.Emit(ev)
}

// Exec is a top-level run executing in a goroutine that the runtime owns, so the run
// goes on whoever reads its events, and ends with exactly one terminal event.
type Exec struct {
	ID    string
	Kind  Kind
	Entry *Entry
	// Log holds every event of the run, nested runs' included.
	Log Log
	// Resume is set when the run continues a stored run (see Options.Resume).
	Resume *Resume

	done       chan struct{}
	out        *Output
	persistErr error
}

// Recorder persists top-level runs as they execute; kern's store.Recorder is one.
type Recorder interface {
	// Begin records a run about to start, before its first event; an error keeps
	// the run from starting. The recorder follows x.Log from then on.
	Begin(ctx context.Context, x *Exec) error
	// End is called once x's terminal event is out and its log closed; it returns
	// once the run's events and final output are durable, or why they are not.
	End(ctx context.Context, x *Exec) error
}

// Checkpointer is implemented by recorders that keep a workflow's finished steps
// while it runs, so that a run left behind by a process that died can be resumed
// after them (see Resume) by another.
type Checkpointer interface {
	// Checkpoint returns once steps, the results of x's top-level steps finished so
	// far, are durable, or with why they are not.
	Checkpoint(ctx context.Context, x *Exec, steps []StepResult) error
}

// Spec is what Go needs to start a top-level run.
type Spec struct {
	Registry *Registry
	Recorder Recorder // nil: the run is not persisted
	Base     *Event   // the run's ID and Origin, on which its terminal event is built
	Kind     Kind
	Output   *Output // filled in as the run goes; its identity fields set
	Resume   *Resume // set when the run continues a stored run
}

// Go starts a top-level run. body does the work, emitting events to x.Log with
// x.Entry.Ctx as its context, and returns an error; Go then ends the run with its
// terminal event, closes its log and has the recorder persist its end before the run
// counts as ended. A panic in body ends the run ERROR. Cancelling ctx cancels the run,
// like Registry.Cancel; ctx's values reach body.
func Go(ctx context.Context, spec Spec, body func(x *Exec) error) (*Exec, error) {
	base, out := spec.Base, spec.Output
	x := &Exec{ID: base.RunID, Kind: spec.Kind, Resume: spec.Resume, done: make(chan struct{}), out: out}
	if spec.Resume != nil {
		x.Log.StartAt(spec.Resume.NextEvent)
	}
	e, err := spec.Registry.Begin(context.WithoutCancel(ctx), x.ID, x.Log.Stop)
	if err != nil {
		return nil, err
	}
	x.Entry = e
	if spec.Recorder != nil {
		if err := spec.Recorder.Begin(ctx, x); err != nil {
			e.Finish(err)
			e.Close()
			return nil, fmt.Errorf("run %s: %w", x.ID, err)
		}
	}
	cancel := func() {
		cause := context.Cause(ctx)
		e.CancelCause(cause.Error(), cause)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { cancel(); close(fired) })
	if ctx.Err() != nil {
		cancel() // at once: AfterFunc's goroutine may come after a short run's end
	}
	go func() {
		defer close(x.done)
		err := x.call(body)
		if !stop() {
			<-fired // no goroutine of the run outlives it
		}
		e.End(&x.Log, base, spec.Kind, out, err)
		x.Log.Close()
		if spec.Recorder != nil {
			// The end is durable before the run counts as ended: a cancel that waits
			// for it, or a reader of the store, sees the final state.
			x.persistErr = spec.Recorder.End(context.WithoutCancel(ctx), x)
		}
		e.Close()
	}()
	return x, nil
}

// Output returns the run's output: while the run executes, only its identity and
// input may be read; once Done is closed, all of it.
func (x *Exec) Output() *Output { return x.out }

// PersistErr returns why the run's end could not be persisted, once Done is closed.
func (x *Exec) PersistErr() error {
	<-x.done
	return x.persistErr
}

func (x *Exec) call(body func(*Exec) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return body(x)
}

// Done is closed once the run has ended, its terminal event is out and its goroutine
// is finishing.
func (x *Exec) Done() <-chan struct{} { return x.done }

// Wait waits for the run to end and returns its output.
func (x *Exec) Wait() *Output {
	<-x.done
	return x.out
}

// Stream returns an iterator over the run's events from the first one, ending after
// its terminal event. Breaking out of the loop cancels the run with reason
// "consumer stopped"; either way, the iterator returns only once the run's goroutine
// is done.
func (x *Exec) Stream(yield func(*Event, error) bool) {
	ended := false
	defer func() {
		// Also when yield panicked: a run nobody reads any more must not go on.
		if !ended {
			x.Entry.Cancel(ReasonConsumerStopped)
		}
		<-x.done
	}()
	read := true
	_ = x.Log.Follow(context.Background(), 0, func(ev *Event) bool {
		read = yield(ev, nil)
		return read
	})
	ended = read
}

// Reasons kern gives for cancels it makes itself.
const (
	ReasonConsumerStopped = "consumer stopped"
	ReasonRequested       = "cancelled by request"
)

// Sessions is implemented by recorders that keep sessions (store.Recorder does): the
// state a session's runs share, and the runs a session already had.
type Sessions interface {
	// LoadState returns the session's state; nil, and no error, for a new session.
	LoadState(ctx context.Context, sessionID string) (map[string]any, error)
	// SaveState stores the session's state, creating the session if need be.
	SaveState(ctx context.Context, sessionID string, x *Exec, state map[string]any) error
	// History returns the outputs of the last n completed runs of componentID in the
	// session, oldest first.
	History(ctx context.Context, sessionID string, kind Kind, componentID string, n int) ([]*Output, error)
}
