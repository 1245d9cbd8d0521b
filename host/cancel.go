package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/telemetry"
)

// unstoredWait is how long a waiting cancel waits for a run no process has stored
// yet: one started elsewhere a moment ago is stored within a few flush intervals.
const unstoredWait = 250 * time.Millisecond

// Cancel cancels the run with the given id wherever it is: executing or queued in
// this process, queued in the store's queue, executing in another process on the
// same database, or not started yet (the intent is kept, and the run ends CANCELLED
// as it starts, in any process). With wait it returns once the run has ended, or
// ctx is done; without, at once. It returns the status the run reached (its
// terminal status, RUNNING while its cancel is under way, PENDING for a run not
// known yet) and whether the run is known: false means that no process holds or
// stored a run with this id, and the intent is kept for when one starts.
//
// When the store keeps cancel intents (a store.Canceller), the cancel is durable
// before Cancel returns, so that a process taking the run over later cannot
// reverse it: its intent is stored, or, for a run executing here that Cancel
// waits for, the run's end (see keepUnlessEnded). If the store fails to keep
// either for a run executing here, the run is cancelled here all the same, and
// the error wraps ErrNotDurable: the cancel must not be acknowledged.
// For a run elsewhere the store's error is returned. reason is
// run.ReasonRequested if empty.
func (h *Host) Cancel(ctx context.Context, id, reason string, wait bool) (st run.Status, known bool, err error) {
	if reason == "" {
		reason = run.ReasonRequested
	}
	if obs := h.opts.Telemetry; obs != nil {
		obs.CancelRequested(id, telemetry.CancelSource(ctx, telemetry.SourceRequest))
	}
	r := h.Lookup(id)
	if r != nil && h.store == nil && paused(r) {
		// Paused in memory: a run started cancelled ends it, after its pause.
		if c, err := h.continueHeld(ContinueRequest{Kind: r.comp.kind, Component: r.comp.id, RunID: id}, r.comp, reason); err == nil {
			r = c
		} else if again := h.Lookup(id); again != nil {
			r = again // continued meanwhile: cancel that run
		}
	}
	if r != nil && h.store != nil && paused(r) {
		r = nil // its execution here has ended: the stored row is the run
	}
	if r != nil && !lost(r) {
		st, err := h.cancelHeld(ctx, r, reason, wait)
		switch {
		case st == run.StatusPaused && h.store != nil && err == nil:
			// It paused as the cancel came: the stored pause is the run now.
			ok, err := h.cancelPaused(ctx, id, reason)
			if ok || err != nil {
				return run.StatusCancelled, true, err
			}
			r = nil // cancelled by watch already, or continued since: the store says, below
		case !lost(r):
			return st, true, err
		}
		// Lost while the cancel waited: its end here is not the run's; the store
		// says what became of it, below.
	}
	if e := h.active(id); e != nil && r == nil { // a lost run's entry is not the run
		kept := h.keepAsync(ctx, id, reason)
		st := h.cancelActive(ctx, e, reason, wait)
		return st, true, <-kept
	}
	if h.store == nil {
		st := h.requestAll(id, reason)
		return st, st != run.StatusPending, nil
	}
	rec, err := h.store.GetRun(ctx, id)
	switch {
	case err == nil && rec.Status.Terminal():
		return rec.Status, true, nil
	case errors.Is(err, store.ErrNotFound):
		rec = nil
	case err != nil:
		return "", false, fmt.Errorf("host: cancel run %s: %w", id, err)
	}
	return h.cancelElsewhere(ctx, id, reason, rec, wait)
}

// cancelHeld cancels a run this host started or queued.
func (h *Host) cancelHeld(ctx context.Context, r *Run, reason string, wait bool) (run.Status, error) {
	if x := r.Exec(); x != nil && x.Ended() {
		return x.Output().Status, nil // ended: its status, whatever the registry remembers
	}
	if r.Err() != nil {
		return run.StatusError, nil // it could not start
	}
	r.cancelAsked.CompareAndSwap(nil, &reason)
	st := r.comp.registry.RequestCancel(r.id, reason)
	var kept <-chan error
	if !wait || r.Exec() == nil {
		kept = h.keepAsync(ctx, r.id, reason) // durable while the run ends
	}
	if r.Exec() == nil && h.dequeue(r) {
		st = run.StatusRunning // queued: started now, it consumes the intent and ends at once
	}
	if wait {
		if kept == nil {
			kept = h.keepUnlessEnded(ctx, r, reason)
		}
		if out, werr := r.Wait(ctx); werr == nil {
			st = out.Status
		} else if st == run.StatusPending {
			st = run.StatusRunning
		}
	}
	err := <-kept
	if endPersisted(r) {
		// Its terminal status is stored: no process can reverse the cancel, and
		// that status is the answer.
		st, err = r.Exec().Output().Status, nil
	}
	return st, err
}

// lost reports whether this process lost r's run (its recorder gave up on it, see
// FollowExec): the run is no longer this host's to answer for.
func lost(r *Run) bool {
	x := r.Exec()
	return x != nil && x.Log.Lost()
}

// paused reports whether r's execution here ended with the run PAUSED.
func paused(r *Run) bool {
	x := r.Exec()
	return x != nil && x.Ended() && x.Output().Status == run.StatusPaused
}

// endPersisted reports whether r's run has ended and its end was persisted.
func endPersisted(r *Run) bool {
	x := r.Exec()
	return x != nil && x.Ended() && x.PersistErr() == nil
}

// cancelActive cancels a run active in one of the host's registries that the host
// did not start (a nested agent run, a run a program started on a workflow
// directly).
func (h *Host) cancelActive(ctx context.Context, e *engine.Entry, reason string, wait bool) run.Status {
	e.Cancel(reason)
	if !wait {
		return e.Status()
	}
	select {
	case <-e.Done():
	case <-ctx.Done():
	}
	return e.Status()
}

// keepGrace is how long a waiting cancel of a run executing here waits for the
// run's end to be stored before it stores the cancel's intent as well (see
// keepUnlessEnded).
const keepGrace = 50 * time.Millisecond

// keepUnlessEnded makes the cancel of r, a run executing here whose end a cancel
// waits for, durable: a stored CANCELLED end is the durable fact itself, and an
// intent stored beside it would cost the store's writer a transaction ahead of
// the end's, which the run's clients wait for. So the intent is stored (keepAsync)
// only once the run has not ended within keepGrace (or half of what remains of
// ctx, if less: the intent's write keeps the rest), or ended without its end
// stored (the recorder gave up on it, or another replica took it over).
func (h *Host) keepUnlessEnded(ctx context.Context, r *Run, reason string) <-chan error {
	grace := keepGrace
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(dl)/2)
	}
	soon, cancel := context.WithTimeout(ctx, grace)
	_, err := r.Wait(soon)
	cancel()
	// An end persisted by a recorder of the caller's, perhaps on another store,
	// is not known to be where the host's cancels look: the intent is stored.
	if err == nil && r.comp.recordsHere && endPersisted(r) {
		done := make(chan error, 1)
		done <- nil
		return done
	}
	return h.keepAsync(ctx, r.id, reason)
}

// keepAsync is keep on a goroutine of its own, whose outcome the returned channel
// delivers: the caller receives it before it answers.
func (h *Host) keepAsync(ctx context.Context, id, reason string) <-chan error {
	kept := make(chan error, 1)
	if h.canceller == nil {
		kept <- nil
		return kept
	}
	go func() { kept <- h.keep(ctx, id, reason) }()
	return kept
}

// keep stores the cancel intent of a run cancelled here in a store that keeps
// intents: a process that takes the run over must not reverse the cancel.
func (h *Host) keep(ctx context.Context, id, reason string) error {
	if err := h.canceller.CancelRun(ctx, id, reason); err != nil {
		h.log.Warn("host: cancel applied here but not stored", "run_id", id, "err", err)
		return fmt.Errorf("host: run %s: %w: its intent not stored: %w", id, ErrNotDurable, err)
	}
	return nil
}

// cancelElsewhere cancels a run this host does not hold, through the store: the
// intent is stored and notified first. A stored run is waited for (unless !wait)
// until its end is stored; a run not stored yet is waited for a moment only.
func (h *Host) cancelElsewhere(ctx context.Context, id, reason string, rec *store.Run, wait bool) (run.Status, bool, error) {
	if h.canceller == nil {
		// No process hears of it: the intent is kept here only.
		st := h.requestAll(id, reason)
		if rec != nil && st == run.StatusPending {
			st = rec.Status
		}
		return st, rec != nil || st != run.StatusPending, nil
	}
	if err := h.canceller.CancelRun(ctx, id, reason); err != nil {
		return "", rec != nil, fmt.Errorf("host: cancel run %s: %w", id, err)
	}
	if rec == nil {
		st := h.requestAll(id, reason) // kept here too
		if wait && st == run.StatusPending {
			unknown, cancel := context.WithTimeout(ctx, unstoredWait)
			st = h.waitEnded(unknown, id, st)
			cancel()
		}
		return st, st != run.StatusPending, nil
	}
	if rec.Status == run.StatusPending && rec.LeaseUntil.IsZero() {
		// Queued, started by no process yet: it ends here and now.
		ok, err := h.queue.cancelQueued(ctx, id, reason)
		if err != nil {
			return "", true, fmt.Errorf("host: cancel queued run %s: %w", id, err)
		}
		if ok {
			return run.StatusCancelled, true, nil
		}
	}
	if rec.Status == run.StatusPaused {
		// A row, held by no process: it ends here and now, unless a continue
		// took it first (then the intent reaches it where it runs).
		ok, err := h.cancelPaused(ctx, id, reason)
		if err != nil {
			return "", true, err
		}
		if ok {
			return run.StatusCancelled, true, nil
		}
		rec.Status = run.StatusRunning // continued meanwhile: the intent reaches it
	}
	st := rec.Status
	if wait {
		st = h.waitEnded(ctx, id, st)
	}
	return st, true, nil
}

// active returns the entry of a run active in one of the host's registries.
func (h *Host) active(id string) *engine.Entry {
	for _, reg := range h.registries() {
		if e, ok := engine.Lookup(reg, id); ok {
			return e
		}
	}
	return nil
}

// requestAll keeps a cancel intent for a run not active here in every registry a
// run could start in, and returns what the first registry answers (the terminal
// status of a run it remembers, PENDING otherwise).
func (h *Host) requestAll(id, reason string) run.Status {
	st := run.StatusPending
	for i, reg := range h.registries() {
		if s := reg.RequestCancel(id, reason); i == 0 || s != run.StatusPending {
			st = s
		}
	}
	return st
}

// remoteCancel applies a cancel notified through the store, without waiting for
// the run to end: it cancels the run if it executes or is queued here, and
// otherwise keeps the intent in every registry a run could start in.
func (h *Host) remoteCancel(id, reason string) {
	h.opts.Telemetry.CancelRequested(id, telemetry.SourceReplica)
	if r := h.Lookup(id); r != nil {
		r.comp.registry.RequestCancel(id, reason)
		if r.Exec() == nil {
			h.dequeue(r) // queued: started now, it ends at once
		}
		return
	}
	h.requestAll(id, reason)
}

// registryHook is what the host's registries hand their Cancel to, so that a
// program's wf.CancelRun reaches a run in another process as Host.Cancel does. It
// returns Cancel's errors, ErrNotDurable's too: a cancel that took effect here
// only is not reported done.
type registryHook struct{ h *Host }

func (k registryHook) CancelRun(ctx context.Context, id, reason string) (run.Status, error) {
	st, _, err := k.h.Cancel(ctx, id, reason, true)
	if err == nil && !st.Terminal() && st != run.StatusPending && ctx.Err() != nil {
		err = ctx.Err()
	}
	return st, err
}

// Wait waits until the run with the given id has ended, wherever it executes, or
// ctx is done, and returns the status it reached (its terminal status, or the last
// one known when ctx ended first). A run neither held here nor stored is waited
// for as it may still start; ErrUnknownRun tells, without a store, that no run with
// this id is known here.
func (h *Host) Wait(ctx context.Context, id string) (run.Status, error) {
	if r := h.Lookup(id); r != nil {
		out, err := r.Wait(ctx)
		return out.Status, err
	}
	if e := h.active(id); e != nil {
		select {
		case <-e.Done():
			return e.Status(), nil
		case <-ctx.Done():
			return e.Status(), ctx.Err()
		}
	}
	if h.store == nil {
		return "", fmt.Errorf("host: run %s: %w", id, ErrUnknownRun)
	}
	st := h.waitEnded(ctx, id, run.StatusPending)
	if !st.Terminal() {
		return st, ctx.Err()
	}
	return st, nil
}
