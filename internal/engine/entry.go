// Package engine runs kern's runs: the lifecycle of a run in its registry (begin,
// cancel, finish, end), the goroutine that executes a top-level run, the write side
// of its event log, and the scope nested runs execute in. Package run holds the
// vocabulary and the read side; agent and workflow start their runs here.
//
// A run's lifecycle: Begin registers it (consuming a cancel intent kept for its id);
// Finish decides, once, how it ended; End emits its one terminal event; Close ends
// its registration, after which cancels report its final status.
package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kern-dev/kern/internal/donech"
	"github.com/kern-dev/kern/internal/eventlog"
	"github.com/kern-dev/kern/internal/runaccess"
	"github.com/kern-dev/kern/run"
)

// Hooks into package run (see runaccess), typed once.
var (
	newExec   = runaccess.NewExec.(func(string, run.Kind, *run.Output, *run.Resume) (*run.Exec, *eventlog.Log[run.Event]))
	logOf     = runaccess.Log.(func(*run.Exec) *eventlog.Log[run.Event])
	started   = runaccess.Started.(func(*run.Exec, any))
	ended     = runaccess.Ended.(func(*run.Exec, error))
	afterDone = runaccess.AfterDone.(func(*run.Exec, func()))
	entryOf   = runaccess.Entry.(func(*run.Exec) any)
	setErr    = runaccess.SetErr.(func(*run.Output, error))
	regBegin  = runaccess.Begin.(func(*run.Registry, string, any) error)
	regEnd    = runaccess.End.(func(*run.Registry, string, any, run.Status))
	regFind   = runaccess.Lookup.(func(*run.Registry, string) (any, bool))
)

// Entry is one active run's handle in a registry.
type Entry struct {
	ID  string
	reg *run.Registry

	// Ctx is the run's context: cancelled when the run is cancelled.
	Ctx    context.Context
	cancel context.CancelCauseFunc
	// onCancel runs once, before Ctx is cancelled, when a cancel is requested.
	onCancel func()
	started  time.Time

	mu        sync.Mutex // guards the fields below; taken after the registry's lock
	requested bool
	intended  bool // cancelled before it started: Begin stops it
	reason    string
	cause     error // what made the caller cancel, when it was an error (a context's)
	failure   error // why the runtime stopped the run as failed (Fail)
	final     run.Status
	done      donech.Lazy // closed by Close
}

// Begin registers in reg a run that is about to start. Its context derives from
// parent; a cancel request calls onCancel (if not nil) and then cancels that context.
// A kept cancel intent for id is consumed: the returned entry is already cancelled.
func Begin(reg *run.Registry, parent context.Context, id string, onCancel func()) (*Entry, error) {
	ctx, cancel := context.WithCancelCause(parent)
	e := &Entry{ID: id, reg: reg, Ctx: ctx, cancel: cancel, onCancel: onCancel, started: time.Now()}
	if err := regBegin(reg, id, e); err != nil {
		cancel(nil)
		return nil, err
	}
	e.mu.Lock()
	intended, reason := e.intended, e.reason
	e.mu.Unlock()
	if intended {
		e.stop(reason, nil)
	}
	return e, nil
}

// Intended marks the run as cancelled before it started, for reason; Begin stops it.
// The registry calls it as the run registers.
func (e *Entry) Intended(reason string) {
	e.mu.Lock()
	e.requested, e.intended, e.reason = true, true, reason
	e.mu.Unlock()
}

// Lookup returns the entry of a run active in reg.
func Lookup(reg *run.Registry, id string) (*Entry, bool) {
	a, ok := regFind(reg, id)
	if !ok {
		return nil, false
	}
	e, ok := a.(*Entry)
	return e, ok
}

func (e *Entry) stop(reason string, cause error) {
	if e.onCancel != nil {
		e.onCancel()
	}
	e.cancel(&run.CancelledError{RunID: e.ID, Reason: reason, Cause: cause})
}

// Cancel asks the run to stop now, without waiting for it. It reports whether this
// call was the first to ask.
func (e *Entry) Cancel(reason string) bool { return e.CancelCause(reason, nil) }

// CancelCause is Cancel with the error that made the caller cancel (a context's
// cause, say), which the run's error then wraps.
func (e *Entry) CancelCause(reason string, cause error) bool {
	e.mu.Lock()
	first := !e.requested && e.final == ""
	if first {
		e.requested, e.reason, e.cause = true, reason, cause
	}
	e.mu.Unlock()
	if first {
		e.stop(reason, cause)
	}
	return first
}

// Fail stops the run as failed, for a reason outside it (its store went away): it
// ends ERROR with err, unless it had already ended or been cancelled.
func (e *Entry) Fail(err error) {
	e.mu.Lock()
	first := !e.requested && e.failure == nil && e.final == ""
	if first {
		e.failure = err
	}
	e.mu.Unlock()
	if first {
		if e.onCancel != nil {
			e.onCancel()
		}
		e.cancel(err)
	}
}

// Finish decides how the run ended, once: CANCELLED if a cancel was requested or its
// context is done, PAUSED if err matches run.ErrPaused, ERROR if err is not nil,
// COMPLETED otherwise. From then on, cancels
// no longer affect the run and wait for Close. It returns the status and, for a
// cancelled run, the reason.
func (e *Entry) Finish(err error) (run.Status, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.final != "" {
		return e.final, e.reason
	}
	switch {
	case e.failure != nil:
		e.final = run.StatusError
	case e.requested:
		e.final = run.StatusCancelled
	case run.TimedOut(e.Ctx) != nil:
		// A policy's deadline (a step's timeout, a workflow's) is a failure, not a cancel.
		e.final, e.failure = run.StatusError, context.Cause(e.Ctx)
	case e.Ctx.Err() != nil || errors.Is(err, run.ErrCancelled):
		e.final = run.StatusCancelled
		e.reason, e.cause = causeOf(e.Ctx, err)
	case errors.Is(err, run.ErrPaused):
		// Not an end: the run waits for a person, held by no goroutine.
		e.final = run.StatusPaused
	case err != nil:
		e.final = run.StatusError
	default:
		e.final = run.StatusCompleted
	}
	return e.final, e.reason
}

// causeOf says why a run that was not cancelled through its own entry stopped: its
// parent was cancelled, or its caller's context ended.
func causeOf(ctx context.Context, err error) (reason string, cause error) {
	var ce *run.CancelledError
	if errors.As(context.Cause(ctx), &ce) || errors.As(err, &ce) {
		return ce.Reason, ce.Cause
	}
	if c := context.Cause(ctx); c != nil {
		return c.Error(), c
	}
	return "cancelled", nil
}

// Err returns the error of a run that has ended: nil when it completed, a
// *run.CancelledError when it was cancelled, err (the run's own) when it failed.
// Finish must have been called.
func (e *Entry) Err(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.final {
	case run.StatusCancelled:
		return &run.CancelledError{RunID: e.ID, Reason: e.reason, Cause: e.cause}
	case run.StatusError:
		if e.failure != nil {
			return e.failure
		}
		return err
	}
	return nil
}

// Close ends the run's registration once its terminal event is out: waiting cancels
// return, and later cancels report the final status. Finish must have been called.
func (e *Entry) Close() {
	regEnd(e.reg, e.ID, e, e.Status())
	e.cancel(nil) // release the context's resources
	e.mu.Lock()
	e.done.Close()
	e.mu.Unlock()
}

// Done is closed once the run has ended and its terminal event is out.
func (e *Entry) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done.Chan()
}

// Status returns the run's final status, or RUNNING while it has none.
func (e *Entry) Status() run.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.final == "" {
		return run.StatusRunning
	}
	return e.final
}
