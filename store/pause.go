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
