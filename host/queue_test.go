package host

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// TestQueuedRunTakenByDeadProcess: a run that a process took from SQLite's queue
// (PENDING, with a lease) and died before it recorded the run is taken over by
// recovery once the lease lapsed, and completes.
func TestQueuedRunTakenByDeadProcess(t *testing.T) {
	st := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
	ctx := context.Background()
	id, past := run.NewID(), time.Now().Add(-time.Minute)
	if err := st.Enqueue(ctx, &store.Job{ID: id, Kind: run.KindWorkflow, ComponentID: "quick", Input: "go",
		Output: run.Output{RunID: id, WorkflowID: "quick"}, CreatedAt: past}); err != nil {
		t.Fatal(err)
	}
	// Taken, as a worker takes it, by a process whose lease lapsed since.
	taken := &store.Run{ID: id, Status: run.StatusPending, Output: run.Output{RunID: id, WorkflowID: "quick"}, LeaseUntil: past}
	if err := st.UpdateRun(ctx, taken); err != nil {
		t.Fatal(err)
	}
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoWork: true}, sig)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(ctx)
	<-sig.recovered
	// The host forgets a run once its end is stored: one not held any more was
	// taken over and has ended already, which the store says.
	if r := h.Lookup(id); r != nil {
		if out, err := r.Wait(ctx); err != nil || out.Status != run.StatusCompleted {
			t.Fatalf("taken-over run ended %s, %v", out.Status, err)
		}
	}
	if rec, err := st.GetRun(ctx, id); err != nil || rec.Status != run.StatusCompleted || rec.Replica != "B" {
		t.Fatalf("after the first recovery round the run is stored %+v, %v; want COMPLETED on B", rec, err)
	}
}

// TestQueuedRunsOutliveShutdown: runs queued on SQLite when the host shuts down
// stay queued, and the next host on the file runs them.
func TestQueuedRunsOutliveShutdown(t *testing.T) {
	st := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
	ctx := context.Background()
	gate := make(chan struct{})
	defer close(gate)
	h, err := New(st, Options{Workflows: []*workflow.Workflow{gatedWorkflow("Quick", gate)}, Workers: 1,
		NoRecovery: true, ShutdownGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		out, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "quick", Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.RunID)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var queued []string // all but the one the first host started, cancelled on shutdown
	for _, id := range ids {
		rec, err := st.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status == run.StatusPending && rec.LeaseUntil.IsZero() {
			queued = append(queued, id)
		}
	}
	if len(queued) < 2 {
		t.Fatalf("%d runs still queued after shutdown with one worker, want at least 2", len(queued))
	}

	h2 := startHost(t, st, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, NoRecovery: true})
	for _, id := range queued {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		st2, err := h2.Wait(wctx, id)
		cancel()
		if err != nil || st2 != run.StatusCompleted {
			t.Errorf("queued run %s on the next host: %s, %v; want COMPLETED", id, st2, err)
		}
	}
}
