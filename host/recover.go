package host

import (
	"context"
	"errors"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// startRecovery starts the loop that takes over the runs processes which died
// left behind: now, then three times per lease, until ctx is done. It does nothing
// with NoRecovery, or without a recorder of the host's own (a Recorder passed in
// Options recovers as its options say).
func (h *Host) startRecovery(ctx context.Context) {
	if h.ownRec == nil || h.opts.NoRecovery {
		return
	}
	rv := &store.Recovery{Store: h.store, Replica: h.opts.Replica, Lease: h.opts.Lease,
		Executes: h.executes, Takeover: h.takeover}
	tick := h.signals.recoverTick
	h.bg.Go(func() {
		if tick == nil {
			t := time.NewTicker(h.opts.Lease / 3)
			defer t.Stop()
			tick = t.C
		}
		for {
			runs, err := rv.Once(ctx)
			h.logRecovered(runs, err)
			h.signals.signal(h.signals.recovered)
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
	})
}

// executes reports whether this process executes the run: its recorder records it,
// or the host holds it.
func (h *Host) executes(id string) bool {
	if h.ownRec != nil && h.ownRec.Executes(id) {
		return true
	}
	return h.Lookup(id) != nil
}

// logRecovered reports the runs left behind that recovery ended ERROR.
func (h *Host) logRecovered(runs []*store.Run, err error) {
	if err != nil {
		h.log.Error("host: recover runs left behind", "err", err)
	}
	for _, r := range runs {
		h.log.Warn("host: a run left behind by a process that died ended ERROR \"interrupted\"",
			"run_id", r.ID, "component", r.ComponentID, "from_replica", r.ClaimedFrom)
	}
}

// takeover resumes a run that a process which died left behind, claimed for this
// host: a workflow's run goes on after its last checkpointed step, here; a run that
// never started (no event stored) starts. It returns store.ErrNotResumable for a
// run it cannot resume (an agent's, an unknown component's, a workflow marked not
// resumable, once started, or one whose checkpoint does not fit the workflow),
// which recovery then ends ERROR "interrupted", and another error when it cannot
// resume it now (shutting down, the store failing): the run is left to its lease.
func (h *Host) takeover(ctx context.Context, rec *store.Run, tail *store.Tail) error {
	c := h.component(rec.Kind, rec.ComponentID)
	if c == nil {
		return store.ErrNotResumable
	}
	steps := rec.Output.StepResults
	next := 0
	if tail.Last != nil {
		next = tail.Last.Index + 1
	}
	// A run with no event stored never started (a queued run whose worker died
	// before starting it): any run may start then. Otherwise only a resumable
	// workflow's run goes on.
	if next > 0 && (rec.Kind != run.KindWorkflow || !c.resumable) {
		return store.ErrNotResumable
	}
	r := newRun(c, Request{RunID: rec.ID, Input: rec.Input, SessionID: rec.SessionID, UserID: rec.UserID}, true)
	r.opts = append(r.opts, run.WithResume(&run.Resume{NextEvent: next, Steps: steps, Partial: tail.Text, Open: tail.Open}))
	r.trace = &traced{link: traceparentOf(&rec.Output), takenOver: true}
	// Cancelled while its process was dying: it resumes only to end CANCELLED (begin
	// reads the intent; when it cannot, the run is left to its lease).
	r.given = true
	// Not counted against Options.MaxRuns: the run was acknowledged already.
	if err := h.register(r, false); err != nil {
		return err
	}
	if err := h.startNow(r); err != nil {
		if errors.Is(err, run.ErrInvalid) {
			return store.ErrNotResumable // its checkpoint does not fit the workflow
		}
		return err
	}
	h.log.InfoContext(r.logCtx(), "host: took over a run left behind", "run_id", rec.ID, "component", c.id,
		"from_replica", rec.ClaimedFrom, "finished_steps", len(steps), "next_event", next, "partial_bytes", len(tail.Text))
	return nil
}
