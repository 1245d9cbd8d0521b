package host

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// ErrNoPauses: the host's store keeps no paused runs to continue (see
// store.Pauser).
var ErrNoPauses = errors.New("host: this host's store keeps no paused runs")

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
	// Pause, if not 0, is the pause the decisions were made for (its
	// run.Paused.NextEvent): should the run have been continued and paused again
	// since, the continue fails with run.ErrNotPaused instead of applying them to
	// a pause no one saw.
	Pause int
	// Parent is the caller's span (an HTTP request's traceparent): the parent of
	// the continued part's span when valid; without it, the part that paused is.
	Parent trace.SpanContext
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
	if h.store == nil {
		return h.continueHeld(req, c, "")
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
	case req.Pause != 0 && rec.Output.Paused.NextEvent != req.Pause:
		return nil, fmt.Errorf("host: run %s paused anew since the pause decided: %w", req.RunID, run.ErrNotPaused)
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
	if paused == nil || paused.NextEvent != rec.Output.Paused.NextEvent {
		// Continued by another and paused anew between the read and the take: the
		// decisions were made for the pause before; this one is not theirs.
		h.repause(taken)
		return nil, fmt.Errorf("host: run %s paused anew since its pause was read: %w", req.RunID, run.ErrNotPaused)
	}
	r := newRun(c, Request{RunID: taken.ID, Input: taken.Input, SessionID: taken.SessionID, UserID: taken.UserID}, req.Background)
	resume.NextEvent, resume.Paused, resume.Steps = paused.NextEvent, paused, taken.Output.StepResults
	r.opts = append(r.opts, run.WithResume(resume))
	r.trace = &traced{parent: req.Parent, link: traceparentOf(&rec.Output), continued: true, pausedAt: rec.UpdatedAt}
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
		return
	}
	// A cancel that came while the run was taken found it not paused: it is
	// applied now, lest the pause outlive an acknowledged cancel.
	if h.canceller == nil {
		return
	}
	reason, ok, err := h.canceller.PendingCancel(ctx, taken.ID)
	if err == nil && ok {
		_, err = h.cancelPaused(ctx, taken.ID, reason)
	}
	if err != nil {
		h.log.Error("host: a paused run put back could not be checked for a cancel", "run_id", taken.ID, "err", err)
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

// continueHeld continues a run paused in this host without a store: held in
// memory (among the last Options.KeepRuns finished runs), it is as durable as the
// process. With cancel set, it is not continued but ended CANCELLED for that
// reason.
func (h *Host) continueHeld(req ContinueRequest, c *component, cancel string) (*Run, error) {
	held := h.Lookup(req.RunID)
	switch {
	case held == nil || held.comp != c:
		return nil, fmt.Errorf("host: run %s of %s %q: %w", req.RunID, c.kind, c.id, ErrUnknownRun)
	case !paused(held):
		return nil, fmt.Errorf("host: run %s is %s: %w", req.RunID, held.Output().Status, run.ErrNotPaused)
	}
	out := held.x.Output()
	resume := &run.Resume{NextEvent: out.Paused.NextEvent, Paused: out.Paused, Steps: out.StepResults}
	var err error
	switch {
	case cancel != "":
	case c.kind == run.KindWorkflow:
		resume.StepDecisions, err = run.ResolveSteps(req.RunID, out.StepRequirements, req.Steps)
	default:
		resume.Decisions, err = run.Resolve(req.RunID, out.Tools, req.Tools)
	}
	if err != nil {
		return nil, err
	}
	if !held.taken.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("host: run %s: another continue or cancel took it: %w", req.RunID, run.ErrNotPaused)
	}
	r := newRun(c, Request{RunID: out.RunID, Input: out.Input, SessionID: out.SessionID, UserID: out.UserID}, req.Background)
	r.opts = append(r.opts, run.WithResume(resume))
	r.trace = &traced{parent: req.Parent, link: held.span, continued: true}
	if err := h.register(r, false); err != nil {
		held.taken.Store(false)
		return nil, err
	}
	if cancel != "" {
		err = h.startCancelled(r, cancel)
	} else {
		err = h.startNow(r)
	}
	if err != nil {
		held.taken.Store(false)
		return nil, err
	}
	return r, nil
}

// startCancelled starts a registered run on a cancelled context, so that it ends
// CANCELLED at once (see beginCancelled).
func (h *Host) startCancelled(r *Run, reason string) error {
	h.mu.Lock()
	if h.closing {
		delete(h.live, r.id)
		h.mu.Unlock()
		return ErrClosed
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	r.claim()
	return h.beginCancelled(r, reason)
}
