package store

import (
	"context"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// Pauser is implemented by stores that keep paused runs (store/sqlite and
// store/postgres). A PAUSED run is a row: no process holds it, no lease runs out
// on it, and recovery leaves it alone, until a process takes it, to continue it
// or to end it.
type Pauser interface {
	// TakePaused takes a PAUSED run for replica until the given time, in one
	// conditional write: its status becomes RUNNING, with replica and lease set,
	// and the run is returned as now stored. Of two processes taking one run at
	// once, one gets it; the other, and a take of a run that is not PAUSED, get
	// an error matching run.ErrNotPaused (ErrNotFound when there is no such run).
	TakePaused(ctx context.Context, runID, replica string, until time.Time) (*Run, error)
	// ExpiredPauses returns the PAUSED runs whose pause expired (PauseExpiry)
	// at or before q.Before, soonest first (ties by run id), after q.After in
	// that order, at most q.Limit (100 when 0). The store finds them in an
	// index of the pauses that expire: the cost does not grow with the runs
	// paused without an expiry or not yet due.
	ExpiredPauses(ctx context.Context, q ExpiredQuery) ([]*Run, error)
}

// ExpiredQuery selects paused runs whose pause expired (Pauser.ExpiredPauses).
type ExpiredQuery struct {
	// Before: pauses that expired at or before this time.
	Before time.Time
	// After, when set, is the last run of the previous page: the page starts
	// after it (its PauseExpiry, then its id).
	After *Run
	Limit int
}

// PauseExpiry is when r's pause expires, at the store's millisecond precision:
// zero when r is not PAUSED or its pause does not expire.
func PauseExpiry(r *Run) time.Time {
	if r.Status != run.StatusPaused || r.Output.Paused == nil || r.Output.Paused.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return r.Output.Paused.ExpiresAt.Truncate(time.Millisecond)
}

// CancelPaused ends a PAUSED run CANCELLED with reason, for replica: it takes the
// run (Pauser.TakePaused, so that a continue racing it finds it taken), stores
// its one terminal event after its RunPaused, and its end, with what it had
// produced as its content. It returns the run's stored output, or an error
// matching run.ErrNotPaused when the run was no longer paused.
func CancelPaused(ctx context.Context, s Store, runID, reason, replica string, lease time.Duration) (*Run, error) {
	p, ok := s.(Pauser)
	if !ok {
		return nil, fmt.Errorf("store: cancel paused run %s: the store keeps no paused runs: %w", runID, run.ErrNotPaused)
	}
	r, err := p.TakePaused(ctx, runID, replica, time.Now().Add(lease))
	if err != nil {
		return nil, err
	}
	next := 0
	if r.Output.Paused != nil {
		next = r.Output.Paused.NextEvent
	}
	out := r.Output
	out.RunID, out.Status, out.Reason = r.ID, run.StatusCancelled, reason
	out.Tools, out.Requirements, out.StepRequirements, out.Paused = nil, nil, nil, nil
	r.Status, r.Output, r.Replica, r.LeaseUntil = run.StatusCancelled, out, replica, time.Time{}
	ev, err := EndEvent(r, next, time.Now())
	if err != nil {
		return nil, err
	}
	if f, ok := s.(Fencer); ok {
		lost, err := f.AppendEventsAs(ctx, replica, []Event{ev})
		if err == nil && len(lost) > 0 {
			err = ErrTakenOver
		}
		if err != nil {
			return nil, fmt.Errorf("store: cancel paused run %s: %w", runID, err)
		}
	} else if err := s.AppendEvents(ctx, []Event{ev}); err != nil {
		return nil, fmt.Errorf("store: cancel paused run %s: %w", runID, err)
	}
	if err := s.UpdateRun(ctx, r); err != nil {
		return nil, fmt.Errorf("store: cancel paused run %s: %w", runID, err)
	}
	return r, nil
}
