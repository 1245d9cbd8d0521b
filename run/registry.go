package run

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Default bounds of what a Registry remembers about runs it does not execute.
const (
	DefaultMemory    = 10 * time.Minute
	DefaultMaxMemory = 10000
)

// Registry knows the runs executing in this process and cancels them. A cancel for a
// run not started yet is kept as an intent, and the run ends CANCELLED as soon as it
// starts; a cancel for a run that has ended reports its terminal status. Intents and
// ended runs are remembered for a bounded time and number, so the registry does not
// grow without limit.
//
// The zero value is ready to use. Agents, workflows and servers that share a Registry
// can cancel each other's runs.
type Registry struct {
	// Memory is how long intents and ended runs are remembered (DefaultMemory if zero).
	Memory time.Duration
	// MaxMemory bounds how many of each are remembered (DefaultMaxMemory if zero).
	MaxMemory int
	// Canceller, if set, takes every cancel asked of Cancel, so that it reaches runs
	// executing in other processes too (kern's host sets it): it cancels the runs of
	// this registry through RequestCancel, never through Cancel. Set it before the
	// registry is used.
	Canceller Canceller

	mu      sync.Mutex // guards the fields below and every Entry's guarded fields
	active  map[string]*Entry
	intents remembered[string] // run id → cancel reason
	ended   remembered[Status] // run id → terminal status
}

// Entry is one active run's handle in a Registry.
type Entry struct {
	ID  string
	reg *Registry

	// Ctx is the run's context: cancelled when the run is cancelled.
	Ctx    context.Context
	cancel context.CancelCauseFunc
	// onCancel runs once, before Ctx is cancelled, when a cancel is requested.
	onCancel func()
	done     chan struct{}
	started  time.Time

	// Guarded by reg.mu.
	requested bool
	reason    string
	cause     error // what made the caller cancel, when it was an error (a context's)
	failure   error // why the runtime stopped the run as failed (Fail)
	final     Status
}

// Begin registers a run that is about to start. Its context derives from parent; a
// cancel request calls onCancel (if not nil) and then cancels that context. A kept
// cancel intent for id is consumed: the returned entry is already cancelled.
func (r *Registry) Begin(parent context.Context, id string, onCancel func()) (*Entry, error) {
	ctx, cancel := context.WithCancelCause(parent)
	e := &Entry{ID: id, reg: r, Ctx: ctx, cancel: cancel, onCancel: onCancel, done: make(chan struct{}), started: time.Now()}

	r.mu.Lock()
	if _, dup := r.active[id]; dup {
		r.mu.Unlock()
		cancel(nil)
		return nil, fmt.Errorf("run %s: %w", id, ErrDuplicateID)
	}
	if r.active == nil {
		r.active = make(map[string]*Entry)
	}
	r.active[id] = e
	reason, intended := r.intents.take(id, r.memory())
	if intended {
		e.requested, e.reason = true, reason
	}
	r.mu.Unlock()

	if intended {
		e.stop(reason, nil)
	}
	return e, nil
}

func (e *Entry) stop(reason string, cause error) {
	if e.onCancel != nil {
		e.onCancel()
	}
	e.cancel(&CancelledError{RunID: e.ID, Reason: reason, Cause: cause})
}

// Cancel asks the run to stop now, without waiting for it. It reports whether this
// call was the first to ask.
func (e *Entry) Cancel(reason string) bool { return e.CancelCause(reason, nil) }

// CancelCause is Cancel with the error that made the caller cancel (a context's
// cause, say), which the run's error then wraps.
func (e *Entry) CancelCause(reason string, cause error) bool {
	r := e.reg
	r.mu.Lock()
	first := !e.requested && e.final == ""
	if first {
		e.requested, e.reason, e.cause = true, reason, cause
	}
	r.mu.Unlock()
	if first {
		e.stop(reason, cause)
	}
	return first
}

// Fail stops the run as failed, for a reason outside it (its store went away): it
// ends ERROR with err, unless it had already ended or been cancelled.
func (e *Entry) Fail(err error) {
	r := e.reg
	r.mu.Lock()
	first := !e.requested && e.failure == nil && e.final == ""
	if first {
		e.failure = err
	}
	r.mu.Unlock()
	if first {
		if e.onCancel != nil {
			e.onCancel()
		}
		e.cancel(err)
	}
}

// Finish decides how the run ended, once: CANCELLED if a cancel was requested or its
// context is done, ERROR if err is not nil, COMPLETED otherwise. From then on, cancels
// no longer affect the run and wait for Close. It returns the status and, for a
// cancelled run, the reason.
func (e *Entry) Finish(err error) (Status, string) {
	r := e.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.final != "" {
		return e.final, e.reason
	}
	switch {
	case e.failure != nil:
		e.final = StatusError
	case e.requested:
		e.final = StatusCancelled
	case TimedOut(e.Ctx) != nil:
		// A policy's deadline (a step's timeout, a workflow's) is a failure, not a cancel.
		e.final, e.failure = StatusError, context.Cause(e.Ctx)
	case e.Ctx.Err() != nil || errors.Is(err, ErrCancelled):
		e.final = StatusCancelled
		e.reason, e.cause = causeOf(e.Ctx, err)
	case err != nil:
		e.final = StatusError
	default:
		e.final = StatusCompleted
	}
	return e.final, e.reason
}

// causeOf says why a run that was not cancelled through its own entry stopped: its
// parent was cancelled, or its caller's context ended.
func causeOf(ctx context.Context, err error) (reason string, cause error) {
	var ce *CancelledError
	if errors.As(context.Cause(ctx), &ce) || errors.As(err, &ce) {
		return ce.Reason, ce.Cause
	}
	if c := context.Cause(ctx); c != nil {
		return c.Error(), c
	}
	return "cancelled", nil
}

// Err returns the error of a run that has ended: nil when it completed, a
// *CancelledError when it was cancelled, err (the run's own) when it failed. Finish
// must have been called.
func (e *Entry) Err(err error) error {
	r := e.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.final {
	case StatusCancelled:
		return &CancelledError{RunID: e.ID, Reason: e.reason, Cause: e.cause}
	case StatusError:
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
	r := e.reg
	r.mu.Lock()
	if r.active[e.ID] == e {
		delete(r.active, e.ID)
	}
	r.ended.put(e.ID, e.final, r.memory(), r.maxMemory())
	r.mu.Unlock()
	e.cancel(nil) // release the context's resources
	close(e.done)
}

// Done is closed once the run has ended and its terminal event is out.
func (e *Entry) Done() <-chan struct{} { return e.done }

// Status returns the run's final status, or RUNNING while it has none.
func (e *Entry) Status() Status {
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	if e.final == "" {
		return StatusRunning
	}
	return e.final
}

// Canceller carries a cancel beyond one process: to a run executing in another
// process that shares a database with this one, or to a durable intent.
type Canceller interface {
	// CancelRun cancels the run with the given id wherever it executes and waits
	// until it has ended (or ctx is done), as Registry.Cancel does.
	CancelRun(ctx context.Context, runID, reason string) (Status, error)
}

// Cancel cancels the run with the given id and waits until it has ended (or ctx is
// done). It returns the status the run reached: its terminal status for a run that
// executes or executed here, or PENDING for a run not known yet, whose cancel is kept
// and takes effect the moment it starts. Cancelling twice is harmless. With a
// Canceller set, the cancel goes through it.
func (r *Registry) Cancel(ctx context.Context, id, reason string) (Status, error) {
	if r.Canceller != nil {
		return r.Canceller.CancelRun(ctx, id, reason)
	}
	st, e := r.request(id, reason)
	if e == nil {
		return st, nil
	}
	select {
	case <-e.done:
		return e.Status(), nil
	case <-ctx.Done():
		return StatusRunning, ctx.Err()
	}
}

// RequestCancel is Cancel without the wait: it returns at once with RUNNING for a
// run whose cancel is under way, the terminal status of a run that ended, or
// PENDING for a run not known yet (the intent is kept).
func (r *Registry) RequestCancel(id, reason string) Status {
	st, _ := r.request(id, reason)
	return st
}

// request cancels an active run and returns its entry, or answers for a run that is
// not active: its terminal status, or PENDING with the intent kept.
func (r *Registry) request(id, reason string) (Status, *Entry) {
	r.mu.Lock()
	e := r.active[id]
	if e == nil {
		defer r.mu.Unlock()
		if st, ok := r.ended.get(id, r.memory()); ok {
			return st, nil
		}
		r.intents.put(id, reason, r.memory(), r.maxMemory())
		return StatusPending, nil
	}
	r.mu.Unlock()
	e.Cancel(reason)
	return StatusRunning, e
}

// Lookup returns the entry of an active run.
func (r *Registry) Lookup(id string) (*Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.active[id]
	return e, ok
}

func (r *Registry) memory() time.Duration {
	if r.Memory > 0 {
		return r.Memory
	}
	return DefaultMemory
}

func (r *Registry) maxMemory() int {
	if r.MaxMemory > 0 {
		return r.MaxMemory
	}
	return DefaultMaxMemory
}

// remembered maps run ids to values for a bounded time and number, forgetting the
// oldest first.
type remembered[V any] struct {
	m     map[string]stamped[V]
	order []stampedID // insertion order, oldest first, from head on
	head  int
	now   func() time.Time // the clock: time.Now if nil (tests set their own)
}

type stamped[V any] struct {
	v  V
	at time.Time
}

type stampedID struct {
	id string
	at time.Time
}

func (m *remembered[V]) put(id string, v V, ttl time.Duration, max int) {
	now := m.clock()
	if m.m == nil {
		m.m = make(map[string]stamped[V])
	}
	m.m[id] = stamped[V]{v, now}
	m.order = append(m.order, stampedID{id, now})
	m.prune(now, ttl, max)
}

func (m *remembered[V]) prune(now time.Time, ttl time.Duration, max int) {
	for m.head < len(m.order) && (len(m.order)-m.head > max || now.Sub(m.order[m.head].at) > ttl) {
		old := m.order[m.head]
		if s, ok := m.m[old.id]; ok && s.at.Equal(old.at) {
			delete(m.m, old.id)
		}
		m.order[m.head] = stampedID{}
		m.head++
	}
	// Compact only once half the slice is spent, so each put costs O(1) amortised.
	if m.head > len(m.order)/2 {
		m.order = append(m.order[:0], m.order[m.head:]...)
		m.head = 0
	}
}

func (m *remembered[V]) get(id string, ttl time.Duration) (V, bool) {
	s, ok := m.m[id]
	if !ok || m.clock().Sub(s.at) > ttl {
		var zero V
		return zero, false
	}
	return s.v, true
}

func (m *remembered[V]) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

func (m *remembered[V]) take(id string, ttl time.Duration) (V, bool) {
	v, ok := m.get(id, ttl)
	delete(m.m, id)
	return v, ok
}
