package engine

import (
	"context"
	"errors"
	"time"

	"github.com/kern-dev/kern/run"
)

// Component is what Start needs to know of an agent or a workflow.
type Component struct {
	Kind     run.Kind
	ID, Name string
	Registry *run.Registry
	Recorder run.Recorder // nil: runs are not persisted
}

// Prepare checks a run about to start and returns the work it does. o holds the
// run's options (its ID set); base and out are the run's base event and output,
// built from the component and o, which it may complete (an agent's model). An
// error keeps the run from starting.
type Prepare func(o run.Options, base *run.Event, out *run.Output) (body func(Run) error, err error)

// Start starts a top-level run of c on input, in the background, and returns at
// once: the implementation of agent.Agent.Start and workflow.Workflow.Start. It
// applies opts, builds the run's base event and output, has prepare check the run
// and give its work, and starts it with Go.
func Start(ctx context.Context, c Component, input string, opts []run.Option, prepare Prepare) (*run.Exec, error) {
	o := run.Apply(opts)
	origin := &run.Origin{SessionID: o.SessionID, UserID: o.UserID, ParentRunID: o.ParentRunID}
	out := &run.Output{
		RunID: o.ID, SessionID: o.SessionID, UserID: o.UserID, ParentRunID: o.ParentRunID,
		Status: run.StatusRunning, Input: input, CreatedAt: time.Now().Unix(), Metadata: o.Metadata,
	}
	switch c.Kind {
	case run.KindWorkflow:
		origin.WorkflowID, origin.WorkflowName = c.ID, c.Name
		out.WorkflowID, out.WorkflowName = c.ID, c.Name
	case run.KindTeam:
		origin.TeamID, origin.TeamName = c.ID, c.Name
		out.TeamID, out.TeamName = c.ID, c.Name
	default:
		origin.AgentID, origin.AgentName = c.ID, c.Name
		out.AgentID, out.AgentName = c.ID, c.Name
	}
	base := &run.Event{RunID: o.ID, Origin: origin}
	body, err := prepare(o, base, out)
	if err != nil {
		return nil, err
	}
	spec := Spec{Registry: c.Registry, Recorder: c.Recorder, Base: base, Kind: c.Kind, Output: out, Resume: o.Resume}
	return Go(ctx, spec, body)
}

// Result waits for the run x that a Start returned, with err, to end: the
// implementation of agent.Agent.Run and workflow.Workflow.Run, as
// Result(a.Start(ctx, input, opts...)). The error is nil when the run completed; for
// a cancelled run it matches run.ErrCancelled, and the output still holds what the
// run produced until then; it also holds why the run's end could not be persisted.
// A nil output means the run did not start (err).
func Result(x *run.Exec, err error) (*run.Output, error) {
	if err != nil {
		return nil, err
	}
	out := x.Wait()
	return out, errors.Join(out.Err(), x.PersistErr())
}

// Events yields the events of the run x that a Start returned, with err, ending
// with its one terminal event, or only err when the run did not start: the body of
// the iterators agent.Agent.Stream and workflow.Workflow.Stream return. Breaking out
// of the loop cancels the run.
//
// The iterators call Start themselves (directly, not through an interface), so that
// the run's options do not escape to the heap.
func Events(x *run.Exec, err error, yield func(*run.Event, error) bool) {
	if err != nil {
		yield(nil, err)
		return
	}
	x.Stream(yield)
}
