package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
)

// The Recorder is a run.Sessions: agents load and save their session's state, and
// read its history, through it.

// LoadState returns a session's state (nil for a session not stored yet).
func (r *Recorder) LoadState(ctx context.Context, sessionID string) (map[string]any, error) {
	s, err := r.store.GetSession(ctx, sessionID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: load session %s: %w", sessionID, err)
	}
	return s.State, nil
}

// SaveState stores a session's state, creating the session for x's component.
func (r *Recorder) SaveState(ctx context.Context, sessionID string, x *run.Exec, state map[string]any) error {
	out := x.Output()
	s := &Session{ID: sessionID, UserID: out.UserID, Kind: x.Kind, ComponentID: out.AgentID, State: state, UpdatedAt: time.Now()}
	if x.Kind == run.KindWorkflow {
		s.ComponentID = out.WorkflowID
	}
	if err := r.store.SaveSession(ctx, s); err != nil {
		return fmt.Errorf("store: save session %s: %w", sessionID, err)
	}
	return nil
}

// History returns the outputs of the last n completed runs of a component in a
// session, oldest first.
func (r *Recorder) History(ctx context.Context, sessionID string, kind run.Kind, componentID string, n int) ([]*run.Output, error) {
	runs, err := r.store.ListRuns(ctx, RunQuery{SessionID: sessionID, Kind: kind, ComponentID: componentID, Status: run.StatusCompleted, Limit: n})
	if err != nil {
		return nil, fmt.Errorf("store: history of session %s: %w", sessionID, err)
	}
	outs := make([]*run.Output, len(runs))
	for i, rn := range runs {
		outs[len(runs)-1-i] = &rn.Output // newest first → oldest first
	}
	return outs, nil
}
