package host

import (
	"context"
	"errors"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// DefaultExpiryInterval is how often a host looks for paused runs whose pause
// expired (Options.ExpiryInterval).
const DefaultExpiryInterval = 5 * time.Second

// expiryPage is how many paused runs a look for expired pauses reads at a time.
const expiryPage = 100

// startExpiry starts the loop that ends the paused runs whose pause expired, as
// their pause says (see run.Paused.ExpiresAt), until ctx is done. It runs only in
// a host that does background work (not NoWork) on a store that keeps paused
// runs, and reads only the paused runs of its components whose pauses can
// expire: a host without such a component pays nothing.
func (h *Host) startExpiry(ctx context.Context) {
	if _, ok := h.store.(store.Pauser); !ok || h.opts.NoWork {
		return
	}
	var comps []*component
	for _, c := range h.comps {
		if expires(c) {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return
	}
	every := h.opts.ExpiryInterval
	if every <= 0 {
		every = DefaultExpiryInterval
	}
	h.bg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			for _, c := range comps {
				h.expirePaused(ctx, c)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// expires reports whether a pause of c's runs can expire.
func expires(c *component) bool {
	if c.agent != nil {
		for _, t := range c.agent.Tools {
			if tool.ControlOf(t).Expiry > 0 {
				return true
			}
		}
		return false
	}
	if c.wf == nil {
		return false // a team: its runs do not pause
	}
	for _, s := range c.wf.Steps {
		t, ok := s.(*workflow.Task)
		if !ok {
			continue
		}
		if t.Pause != nil && t.Pause.Expiry > 0 {
			return true
		}
		if t.Agent != nil && expires(&component{agent: t.Agent}) {
			return true // the step's agent may pause, and the workflow with it
		}
	}
	return false
}

// expirePaused ends c's paused runs whose pause expired.
func (h *Host) expirePaused(ctx context.Context, c *component) {
	now := time.Now()
	for offset := 0; ctx.Err() == nil; offset += expiryPage {
		runs, err := h.store.ListRuns(ctx, store.RunQuery{Status: run.StatusPaused, Kind: c.kind, ComponentID: c.id, Limit: expiryPage, Offset: offset})
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("host: look for expired pauses", "component", c.id, "err", err)
			}
			return
		}
		for _, rec := range runs {
			if p := rec.Output.Paused; p != nil && !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(now) {
				h.expire(ctx, c, rec)
			}
		}
		if len(runs) < expiryPage {
			return
		}
	}
}

// expire ends a paused run whose pause expired: CANCELLED, or, when its pause
// says reject, continued with every confirmation rejected. Another process (or a
// person) that took the run first wins: the run is left to it.
func (h *Host) expire(ctx context.Context, c *component, rec *store.Run) {
	req := ContinueRequest{Kind: c.kind, Component: c.id, RunID: rec.ID, Background: true}
	reject := rec.Output.Paused.OnExpiry == run.ExpiryReject
	no := false
	for _, t := range rec.Output.Tools {
		reject = reject && t.RequiresConfirmation
		t.Confirmed, t.ConfirmationNote = &no, run.ReasonExpired
		req.Tools = append(req.Tools, t)
	}
	for _, s := range rec.Output.StepRequirements {
		reject = reject && (s.RequiresConfirmation || s.RequiresExecutorInput)
		s.Confirmed = &no
		s.ExecutorRequirements = append([]run.Requirement(nil), s.ExecutorRequirements...)
		for j := range s.ExecutorRequirements {
			t := *s.ExecutorRequirements[j].ToolExecution
			reject = reject && t.RequiresConfirmation
			t.Confirmed, t.ConfirmationNote = &no, run.ReasonExpired
			s.ExecutorRequirements[j].ToolExecution = &t
		}
		req.Steps = append(req.Steps, s)
	}
	var err error
	if reject {
		_, err = h.Continue(ctx, req)
	} else {
		_, err = h.cancelPaused(ctx, rec.ID, run.ReasonExpired)
	}
	switch {
	case err == nil:
		h.log.Info("host: a pause expired", "run_id", rec.ID, "component", c.id, "outcome", map[bool]string{true: "rejected", false: "cancelled"}[reject])
	case !errors.Is(err, run.ErrNotPaused) && ctx.Err() == nil:
		h.log.Warn("host: end a run whose pause expired", "run_id", rec.ID, "err", err)
	}
}
