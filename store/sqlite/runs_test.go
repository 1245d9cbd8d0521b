package sqlite

import (
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestUpdateRunFencesEachEnd checks that every status that ends a run, PAUSED
// included, is refused for a replica while another holds the run with a live
// lease, and that other statuses are saved.
func TestUpdateRunFencesEachEnd(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	for _, c := range []struct {
		status  run.Status
		refused bool
	}{
		{run.StatusCompleted, true},
		{run.StatusCancelled, true},
		{run.StatusError, true},
		{run.StatusPaused, true},
		{run.StatusRunning, false},
		{run.StatusPending, false},
	} {
		id := "run-" + string(c.status)
		r := &store.Run{ID: id, Kind: run.KindAgent, Status: run.StatusRunning, Replica: "B",
			LeaseUntil: time.Now().Add(time.Hour), Output: run.Output{RunID: id, Status: run.StatusRunning}}
		if err := s.CreateRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		r.Status, r.Output.Status, r.Replica = c.status, c.status, "A"
		err := s.UpdateRun(t.Context(), r)
		if got := errors.Is(err, store.ErrTakenOver); got != c.refused {
			t.Errorf("UpdateRun to %s for A while B holds the run = %v, want refused %v", c.status, err, c.refused)
		}
	}
}

// TestUpdateRunCheckpoints checks the records that are no end (a checkpoint, a
// resumed run's): one of a run whose stored status is the record's saves the
// output, replica and lease and leaves a pending cancel intent alone; one that
// changes the status (PENDING to RUNNING) saves it too; one of a run never created
// is store.ErrNotFound.
func TestUpdateRunCheckpoints(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := t.Context()
	for _, stored := range []run.Status{run.StatusRunning, run.StatusPending} {
		id := "run-" + string(stored)
		r := &store.Run{ID: id, Kind: run.KindWorkflow, Status: stored, Replica: "A",
			Output: run.Output{RunID: id, Status: stored}}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.CancelRun(ctx, id, "stop"); err != nil {
			t.Fatal(err)
		}
		lease := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		r.Status, r.Output.Status, r.Replica, r.LeaseUntil = run.StatusRunning, run.StatusRunning, "B", lease
		r.Output.StepResults = []run.StepResult{{StepName: "research", Content: "facts"}}
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatalf("checkpoint of a %s run: %v", stored, err)
		}
		got, err := s.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != run.StatusRunning || got.Replica != "B" || !got.LeaseUntil.Equal(lease) ||
			len(got.Output.StepResults) != 1 || got.Output.StepResults[0].Content != "facts" {
			t.Errorf("checkpoint of a %s run stored %s %q %v %+v", stored, got.Status, got.Replica, got.LeaseUntil, got.Output.StepResults)
		}
		if reason, ok, err := s.PendingCancel(ctx, id); err != nil || !ok || reason != "stop" {
			t.Errorf("cancel intent after a checkpoint of a %s run = %q %v %v, want kept", stored, reason, ok, err)
		}
	}
	missing := &store.Run{ID: "run-missing", Status: run.StatusRunning, Output: run.Output{RunID: "run-missing"}}
	if err := s.UpdateRun(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("checkpoint of a run never created = %v, want ErrNotFound", err)
	}
}
