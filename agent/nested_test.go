package agent_test

import (
	"errors"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
)

// A nested run goes through a top-level run's lifecycle and returns its outcome as
// an error: one that could not start has no output; one cancelled before it started
// (its intent kept) ends CANCELLED with its terminal event; one that completes
// returns no error.
func TestRunNestedErrorsAreErrors(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	var log engine.Log
	sc := &engine.Scope{Registry: &reg, Log: &log, Origin: run.Origin{WorkflowRunID: "w"}}

	if out, err := (&agent.Agent{Name: "no model"}).RunNested(t.Context(), sc, "hi"); out != nil || !errors.Is(err, run.ErrInvalid) {
		t.Errorf("invalid agent: output %v, error %v; want none and ErrInvalid", out, err)
	}
	a := &agent.Agent{Name: "a", Model: scripted.New("one two")}
	if out, err := a.RunNested(t.Context(), &engine.Scope{Registry: &reg}, "hi"); out != nil || !errors.Is(err, run.ErrInvalid) {
		t.Errorf("no log: output %v, error %v; want none and ErrInvalid", out, err)
	}

	id := run.NewID()
	if st, _ := reg.Cancel(t.Context(), id, "not wanted"); st != run.StatusPending {
		t.Fatalf("intent: %s", st)
	}
	out, err := a.RunNested(t.Context(), sc, "hi", run.WithID(id))
	var ce *run.CancelledError
	if out == nil || out.Status != run.StatusCancelled || !errors.As(err, &ce) || ce.Reason != "not wanted" {
		t.Errorf("cancelled before start: output %+v, error %v; want CANCELLED, reason kept", out, err)
	}
	if st, _ := reg.Cancel(t.Context(), id, "again"); st != run.StatusCancelled {
		t.Errorf("after the end the registry reports %s", st)
	}

	out, err = a.RunNested(t.Context(), sc, "hi")
	if err != nil || out.Status != run.StatusCompleted || out.Content != "one two" {
		t.Errorf("completed: output %+v, error %v", out, err)
	}
	evs := log.Events()
	if n := len(evs); n == 0 || evs[n-1].Event != run.EventRunCompleted || evs[n-1].WorkflowRunID != "w" {
		t.Errorf("last event %+v, want the nested run's RunCompleted in the scope", evs[n-1])
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.Event == run.EventRunCancelled && ev.RunID != id {
			t.Errorf("a cancelled event of another run: %+v", ev)
		}
	}
}
