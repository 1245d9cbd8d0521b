package host

import (
	"context"
	"errors"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/team"
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
// runs, when one of its components' pauses can expire: a host without such a
// component pays nothing. Each look reads only the pauses due, in the store's
// index of the pauses that expire (store.Pauser.ExpiredPauses): its cost does
// not grow with the runs paused.
func (h *Host) startExpiry(ctx context.Context) {
	p, ok := h.store.(store.Pauser)
	if !ok || h.opts.NoWork {
		return
	}
	comps := make(map[string]*component)
	for key, c := range h.comps {
		if expires(c) {
			comps[key] = c
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
			h.expirePaused(ctx, p, comps)
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
	if c.team != nil {
		// A team pauses when a member agent given a task alone does.
		for _, m := range c.team.Members {
			if a := team.AgentOf(m); a != nil && expires(&component{agent: a}) {
				return true
			}
		}
		return false
	}
	if c.wf == nil {
		return false
	}
	for _, s := range c.wf.Steps {
		if cond, ok := s.(*workflow.Condition); ok && cond.Pause != nil && cond.Pause.Expiry > 0 {
			return true
		}
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
		if tm, ok := t.Runner.(*team.Team); ok && expires(&component{team: tm}) {
			return true // so may the step's team
		}
	}
	return false
}

// expirePaused ends the paused runs of comps (keyed as Host.comps) whose pause
// expired. The runs of other components are left to the hosts that serve them.
func (h *Host) expirePaused(ctx context.Context, p store.Pauser, comps map[string]*component) {
	q := store.ExpiredQuery{Before: time.Now(), Limit: expiryPage}
	for ctx.Err() == nil {
		runs, err := p.ExpiredPauses(ctx, q)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("host: look for expired pauses", "err", err)
			}
			return
		}
		for _, rec := range runs {
			if c := comps[string(rec.Kind)+"/"+rec.ComponentID]; c != nil && rec.Output.Paused != nil {
				h.expire(ctx, c, rec)
			}
		}
		if len(runs) < expiryPage {
			return
		}
		q.After = runs[len(runs)-1]
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
