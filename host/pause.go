package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// ErrNoPauses: the host keeps no paused runs to continue (it has no store, or
// its store keeps no paused runs: see store.Pauser).
var ErrNoPauses = errors.New("host: paused runs are continued from a store; this host has none")

// ContinueRequest is a paused run to continue, with what a person decided about
// what it waits for.
type ContinueRequest struct {
	Kind      run.Kind // run.KindAgent or run.KindWorkflow
	Component string   // the agent's or workflow's id
	RunID     string
	// Tools are the decisions: the tool executions the run waits for (its
	// output's Tools, its RunPaused's tools), each with its decision set
	// (confirmed and confirmation_note, user_input_schema's values, or result),
	// matched by tool_call_id, as Agno's continue form field `tools` holds them.
	Tools []run.ToolExecution
	// Steps are the decisions on what a paused workflow run waits for: its
	// step requirements (its output's StepRequirements, its WorkflowPaused's),
	// each with confirmed set, or its user_input, matched by step_id, as Agno's
	// continue form field `step_requirements` holds them.
	Steps []run.StepRequirement
	// Background: the run goes on whoever reads it (a server's client that
	// disconnects does not cancel it).
	Background bool
}

// Continue continues a paused run in this process: wherever it paused (in this
// process or another on the same database, before or after a restart), it goes
// on where it paused, its first event RunContinued: the confirmed calls run, the
// rejected ones give the model the rejection note as their result, the user's
// values are set in their calls' arguments, external results are the calls'.
// Read its events from the returned run's Exec from Exec().Resume.NextEvent on.
//
// It fails with an error matching run.ErrNotPaused when the run is not paused
// (it runs, it ended, or another continue or a cancel took it first: of two
// continues at once, exactly one gets the run), a *run.DecisionError (matching
// run.ErrInvalid) when the decisions do not match what the run waits for,
// ErrUnknownRun when no run of that component has that id, ErrUnknownComponent,
// ErrClosed, ErrNoPauses, or the store's error.
func (h *Host) Continue(ctx context.Context, req ContinueRequest) (*Run, error) {
	c := h.component(req.Kind, req.Component)
	if c == nil {
		return nil, fmt.Errorf("%w: %s %q", ErrUnknownComponent, req.Kind, req.Component)
	}
	pauser, ok := h.store.(store.Pauser)
	if !ok {
		return nil, ErrNoPauses
	}
	rec, err := h.store.GetRun(ctx, req.RunID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("host: run %s: %w", req.RunID, ErrUnknownRun)
	case err != nil:
		return nil, fmt.Errorf("host: continue run %s: %w", req.RunID, err)
	case rec.Kind != c.kind || rec.ComponentID != c.id:
		return nil, fmt.Errorf("host: run %s of %s %q: %w", req.RunID, c.kind, c.id, ErrUnknownRun)
	case rec.Status != run.StatusPaused:
		return nil, fmt.Errorf("host: run %s is %s: %w", req.RunID, rec.Status, run.ErrNotPaused)
	case rec.Output.Paused == nil:
		return nil, fmt.Errorf("host: run %s is paused with no state to continue from: %w", req.RunID, run.ErrInvalid)
	}
	resume := &run.Resume{}
	if c.kind == run.KindWorkflow {
		resume.StepDecisions, err = run.ResolveSteps(req.RunID, rec.Output.StepRequirements, req.Steps)
	} else {
		resume.Decisions, err = run.Resolve(req.RunID, rec.Output.Tools, req.Tools)
	}
	if err != nil {
		return nil, err
	}
	taken, err := pauser.TakePaused(ctx, req.RunID, h.opts.Replica, time.Now().Add(h.opts.Lease))
	if err != nil {
		return nil, fmt.Errorf("host: continue run %s: %w", req.RunID, err)
	}
	paused := taken.Output.Paused
	if paused == nil { // paused anew, without state, between the read and the take
		paused = rec.Output.Paused
	}
	r := newRun(c, Request{RunID: taken.ID, Input: taken.Input, SessionID: taken.SessionID, UserID: taken.UserID}, req.Background)
	resume.NextEvent, resume.Paused, resume.Steps = paused.NextEvent, paused, taken.Output.StepResults
	r.opts = append(r.opts, run.WithResume(resume))
	// A cancel stored in the moment between the take and the start ends it
	// CANCELLED as it starts: begin reads the intent.
	r.given = true
	if err := h.register(r, false); err != nil {
		h.repause(taken)
		return nil, err
	}
	if err := h.startNow(r); err != nil {
		h.repause(taken)
		return nil, err
	}
	h.log.Info("host: continued a paused run", "run_id", r.id, "component", c.id, "from_replica", rec.Replica,
		"next_event", paused.NextEvent)
	return r, nil
}

// repause puts back a paused run this host took to continue and could not start,
// so that another continue may take it.
func (h *Host) repause(taken *store.Run) {
	ctx, cancel := context.WithTimeout(context.Background(), intentReadTimeout)
	defer cancel()
	taken.Status, taken.Output.Status, taken.LeaseUntil = run.StatusPaused, run.StatusPaused, time.Time{}
	if err := h.store.UpdateRun(ctx, taken); err != nil {
		h.log.Error("host: a paused run taken to be continued could not be put back: its lease lapses and recovery ends it",
			"run_id", taken.ID, "err", err)
	}
}

// cancelPaused ends a paused run CANCELLED, its cancel intent stored already. It
// reports false when the run was no longer paused (a continue took it).
func (h *Host) cancelPaused(ctx context.Context, id, reason string) (bool, error) {
	_, err := store.CancelPaused(ctx, h.store, id, reason, h.opts.Replica, h.opts.Lease)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, run.ErrNotPaused):
		return false, nil
	}
	return false, fmt.Errorf("host: cancel paused run %s: %w", id, err)
}
