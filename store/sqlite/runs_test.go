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
