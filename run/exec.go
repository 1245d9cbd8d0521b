package run

import (
	"context"
	"errors"
	"sync"

	"github.com/kern-dev/kern/internal/donech"
	"github.com/kern-dev/kern/internal/eventlog"
	"github.com/kern-dev/kern/internal/runaccess"
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
	case k == KindTeam:
		return teamTerminalEvent(st)
	case k == KindWorkflow && st == StatusCompleted:
		return EventWorkflowCompleted
	case k == KindWorkflow && st == StatusCancelled:
		return EventWorkflowCancelled
	case k == KindWorkflow && st == StatusPaused:
		return EventWorkflowPaused
	case k == KindWorkflow:
		return EventWorkflowError
	case st == StatusCompleted:
		return EventRunCompleted
	case st == StatusCancelled:
		return EventRunCancelled
	case st == StatusPaused:
		return EventRunPaused
	}
	return EventRunError
}

// Exec is a top-level run executing in a goroutine that the runtime owns, so the run
// goes on whoever reads its events, and ends with exactly one terminal event. It is
// the read side of the run: its events, its output, its end.
type Exec struct {
	ID   string
	Kind Kind
	// Log holds every event of the run, nested runs' included.
	Log Log
	// Resume is set when the run continues a stored run (see Options.Resume).
	Resume *Resume

	entry active // the run's entry in its registry
	out   *Output

	doneMu     sync.Mutex  // guards the fields below
	done       donech.Lazy // closed once the run ended
	afterDone  []func()    // called once done is closed
	persistErr error       // set as done is closed
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

// Output returns the run's output: while the run executes, only its identity and
// input may be read; once Done is closed, all of it.
func (x *Exec) Output() *Output { return x.out }

// PersistErr returns why the run's end could not be persisted, once Done is closed.
func (x *Exec) PersistErr() error {
	<-x.Done()
	return x.persistErr
}

// Done is closed once the run has ended, its terminal event is out and its goroutine
// is finishing.
func (x *Exec) Done() <-chan struct{} {
	x.doneMu.Lock()
	defer x.doneMu.Unlock()
	return x.done.Chan()
}

// Ended reports whether Done is closed, without making Done's channel for a run
// that has not ended (most runs end with nobody waiting on it).
func (x *Exec) Ended() bool {
	x.doneMu.Lock()
	defer x.doneMu.Unlock()
	return x.done.Closed()
}

// Wait waits for the run to end and returns its output.
func (x *Exec) Wait() *Output {
	<-x.Done()
	return x.out
}

// Stream returns an iterator over the run's events from the first one, ending after
// its terminal event. Breaking out of the loop cancels the run with reason
// "consumer stopped"; either way, the iterator returns only once the run's goroutine
// is done. The first Stream of a persisted run gets every event; a later one may
// find the run's first events dropped from memory (see Log.Held): it then yields
// only ErrEvicted, at once, and the run goes on (host.FollowExec reads them from
// the store).
func (x *Exec) Stream(yield func(*Event, error) bool) {
	ended, evicted := false, false
	defer func() {
		if evicted {
			return
		}
		// Also when yield panicked: a run nobody reads any more must not go on.
		if !ended {
			x.entry.Cancel(ReasonConsumerStopped)
		}
		<-x.Done()
	}()
	read := true
	err := x.Log.Follow(context.Background(), 0, func(ev *Event) bool {
		read = yield(ev, nil)
		return read
	})
	if errors.Is(err, ErrEvicted) { // returned before any event
		evicted = true
		yield(nil, err)
		return
	}
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

// active is what a registry and a run's handle need of a run executing here; the
// runtime's entries implement it.
type active interface {
	// Cancel asks the run to stop now, without waiting for it; it reports whether
	// this call was the first to ask.
	Cancel(reason string) bool
	// Done is closed once the run has ended and its terminal event is out.
	Done() <-chan struct{}
	// Status returns the run's final status, or RUNNING while it has none.
	Status() Status
}

// intended is an active run that can be told, as it registers, that a cancel was
// asked for it before it started.
type intended interface {
	active
	Intended(reason string)
}

func init() {
	runaccess.NewExec = func(id string, kind Kind, out *Output, rs *Resume) (*Exec, *eventlog.Log[Event]) {
		x := &Exec{ID: id, Kind: kind, Resume: rs, out: out}
		return x, &x.Log.l
	}
	runaccess.Log = func(x *Exec) *eventlog.Log[Event] { return &x.Log.l }
	runaccess.Started = func(x *Exec, e any) { x.entry = e.(active) }
	runaccess.Ended = func(x *Exec, persistErr error) {
		x.doneMu.Lock()
		x.persistErr = persistErr
		x.done.Close()
		fns := x.afterDone
		x.afterDone = nil
		x.doneMu.Unlock()
		for _, fn := range fns {
			fn()
		}
	}
	runaccess.AfterDone = func(x *Exec, fn func()) {
		x.doneMu.Lock()
		if !x.done.Closed() {
			x.afterDone = append(x.afterDone, fn)
			x.doneMu.Unlock()
			return
		}
		x.doneMu.Unlock()
		fn()
	}
	runaccess.Entry = func(x *Exec) any { return x.entry }
	runaccess.SetErr = func(o *Output, err error) { o.err = err }
	runaccess.Begin = func(r *Registry, id string, e any) error { return r.begin(id, e.(intended)) }
	runaccess.End = func(r *Registry, id string, e any, st Status) { r.end(id, e.(active), st) }
	runaccess.Lookup = func(r *Registry, id string) (any, bool) {
		e, ok := r.lookup(id)
		return e, ok
	}
}
