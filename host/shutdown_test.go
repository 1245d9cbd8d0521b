package host

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// TestJobDuringShutdownGoesBack: a queued run that the store's queue hands to a
// host shutting down (fetched just before the queue stopped) goes back to the
// queue for another process (store.ErrNotHere), left PENDING: it is neither
// started nor ended CANCELLED.
func TestJobDuringShutdownGoesBack(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
	gate := make(chan struct{})
	h, err := New(st, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick"), gatedWorkflow("Gated", gate)},
		NoRecovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(Request{Kind: run.KindWorkflow, Component: "gated", Input: "go"}); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(ctx) }() // waits for the gated run
	eventually.Succeeds(t, 10*time.Second, func() error {
		if !h.Closing() {
			return errors.New("the host is not closing after Shutdown")
		}
		return nil
	})
	// Queued only now: a run queued before the host began closing could be taken and
	// run by the host's own queue worker first.
	id, now := run.NewID(), time.Now()
	queued := &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: "quick", Status: run.StatusPending,
		Input: "go", Output: run.Output{RunID: id, WorkflowID: "quick"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateRun(ctx, queued); err != nil {
		t.Fatal(err)
	}
	err = h.runJob(ctx, queued) // what the queue's worker calls
	close(gate)
	if serr := <-shut; serr != nil {
		t.Fatal(serr)
	}
	if !errors.Is(err, store.ErrNotHere) {
		t.Fatalf("run handed over during shutdown: %v, want store.ErrNotHere (back to the queue)", err)
	}
	if rec, err := st.GetRun(ctx, id); err != nil || rec.Status != run.StatusPending {
		t.Fatalf("run handed over during shutdown is stored %s (%q, %v); want it left PENDING for another process",
			rec.Status, rec.Output.Reason, err)
	}
}
