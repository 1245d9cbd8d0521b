package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
)

// writeCounter is a SQLite store that counts the writes of events and records a
// Recorder makes, by the method it calls.
type writeCounter struct {
	*sqlite.Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *writeCounter) count(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[name]++
}

func (c *writeCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.calls
	c.calls = map[string]int{}
	return got
}

func (c *writeCounter) AppendEvents(ctx context.Context, evs []store.Event) error {
	c.count("AppendEvents")
	return c.Store.AppendEvents(ctx, evs)
}

func (c *writeCounter) AppendEventsAs(ctx context.Context, replica string, evs []store.Event) ([]string, error) {
	c.count("AppendEventsAs")
	return c.Store.AppendEventsAs(ctx, replica, evs)
}

func (c *writeCounter) UpdateRun(ctx context.Context, r *store.Run) error {
	c.count("UpdateRun")
	return c.Store.UpdateRun(ctx, r)
}

func (c *writeCounter) WriteRuns(ctx context.Context, create, update []*store.Run) ([]error, []error) {
	c.count("WriteRuns")
	return c.Store.WriteRuns(ctx, create, update)
}

func (c *writeCounter) WriteEnds(ctx context.Context, replica string, evs []store.Event, recs []*store.Run) ([]string, []error, error) {
	c.count("WriteEnds")
	return c.Store.WriteEnds(ctx, replica, evs, recs)
}

// TestRecorderEndsInOneWrite: a run's last events and its end (a cancelled run's
// WorkflowCancelled and CANCELLED record, which its clients and a waiting cancel
// wait for) are written in one call of a store that can (store.EndWriter: one
// transaction on SQLite), not in a write of events and then one of the record.
func TestRecorderEndsInOneWrite(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &writeCounter{Store: st, calls: map[string]int{}}
	// An hour between bulk writes: what is written at once is the urgent path's.
	rec := store.NewRecorder(c, store.RecorderOptions{Replica: "A", FlushInterval: time.Hour, Lease: time.Hour, NoRecovery: true})
	defer rec.Close()
	stored, more, emitted := make(chan error, 1), make(chan struct{}), make(chan struct{})
	id := run.NewID()
	x, err := goRun(t.Context(), rec, id, nil, func(x engine.Run) error {
		emit(x, "a", run.EventWorkflowStarted, run.EventStepStarted)
		// A checkpoint is urgent too: its events and record in one write.
		stored <- rec.Checkpoint(x.Ctx(), x.X, []run.StepResult{{StepName: "one"}})
		<-more
		emit(x, "b", run.EventRunContent)
		close(emitted)
		<-x.Ctx().Done()
		return x.Ctx().Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-stored; err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if got := c.take(); got["WriteEnds"] != 1 || got["AppendEventsAs"]+got["UpdateRun"] != 0 {
		t.Errorf("the run's first events and checkpoint were written by %v, want one WriteEnds", got)
	}
	waitStored(t, st, id, 2)
	close(more)
	<-emitted
	engine.EntryOf(x).Cancel(run.ReasonRequested)
	if out := x.Wait(); out.Status != run.StatusCancelled {
		t.Fatalf("run ended %s (%q), want CANCELLED", out.Status, out.Error)
	}
	if err := x.PersistErr(); err != nil {
		t.Fatalf("its end was not stored: %v", err)
	}
	if got := c.take(); len(got) != 1 || got["WriteEnds"] != 1 {
		t.Errorf("the run's last events and end were written by %v, want one WriteEnds", got)
	}
	evs, err := st.Events(t.Context(), id, 0, 0)
	if err != nil || len(evs) != 4 || evs[3].Type != run.EventWorkflowCancelled {
		t.Fatalf("stored events: %+v, %v; want 4, the last WorkflowCancelled", evs, err)
	}
	got, err := st.GetRun(t.Context(), id)
	if err != nil || got.Status != run.StatusCancelled {
		t.Fatalf("stored run: %+v, %v; want CANCELLED", got, err)
	}
}
