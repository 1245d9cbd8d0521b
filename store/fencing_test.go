package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestRecorderLosesATakenOverRun: replica A's recorder executes a run; A stalls
// past the run's lease (a long GC pause, a stopped VM, a partition between A and
// the database that heals just after) and replica B claims the run and executes it
// (here: the record B's claim and resume write). A's next lease renewal finds the
// run no longer A's: A writes nothing more of it, neither its events nor its end,
// and cancels it locally, since it goes on on B.
func TestRecorderLosesATakenOverRun(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			const lease = 300 * time.Millisecond
			clk := store.NewTestClock()
			rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{Replica: "A", Lease: lease, NoRecovery: true}, clk))
			defer rec.Close()
			gate := make(chan struct{})
			id := run.NewID()
			x, err := goRun(context.Background(), rec, id, nil, func(x engine.Run) error {
				emit(x, "a", run.EventWorkflowStarted)
				<-gate
				emit(x, "a", run.EventStepStarted, run.EventStepCompleted)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			waitStored(t, st, id, 1)
			claimAs(t, st, id, "B")
			// A's renewals run (three per lease), find the run lost and cancel it.
			clk.Advance(lease / 3)
			select {
			case <-engine.EntryOf(x).Ctx.Done():
			case <-time.After(time.Minute):
				t.Fatal("A's renewals did not find the run lost")
			}
			close(gate)
			x.Wait()
			final, err := st.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			evs, _ := st.Events(ctx, id, 0, 0)
			out := x.Output()
			if final.Replica != "B" || final.Status.Terminal() || len(evs) != 1 {
				t.Fatalf("run claimed by B: stored %s by %q with %d events (A's end: %s, persist err %v);"+
					" want A to notice the lost lease and write nothing more", final.Status, final.Replica, len(evs),
					out.Status, x.PersistErr())
			}
			if out.Status != run.StatusCancelled || out.Reason != store.ReasonTakenOver {
				t.Errorf("A's run ended %s (%q), want CANCELLED %q", out.Status, out.Reason, store.ReasonTakenOver)
			}
			if err := x.PersistErr(); !errors.Is(err, store.ErrTakenOver) {
				t.Errorf("A's PersistErr = %v, want ErrTakenOver", err)
			}
		})
	}
}

// TestRecorderEndRefusedOnATakenOverRun: B claims the run and A ends it before any
// renewal of A's noticed: the store refuses A's end, which does not overwrite B's
// record, and A's End says why.
func TestRecorderEndRefusedOnATakenOverRun(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			rec := store.NewRecorder(st, store.RecorderOptions{Replica: "A", Lease: time.Minute, NoRecovery: true})
			defer rec.Close()
			gate := make(chan struct{})
			id := run.NewID()
			x, err := goRun(context.Background(), rec, id, nil, func(x engine.Run) error {
				emit(x, "a", run.EventWorkflowStarted)
				<-gate
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			waitStored(t, st, id, 1)
			claimAs(t, st, id, "B")
			close(gate)
			x.Wait()
			if err := x.PersistErr(); !errors.Is(err, store.ErrTakenOver) {
				t.Errorf("A's PersistErr = %v, want ErrTakenOver", err)
			}
			final, err := st.GetRun(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if final.Replica != "B" || final.Status != run.StatusRunning {
				t.Errorf("run claimed by B, then ended by A: stored %s by %q", final.Status, final.Replica)
			}
		})
	}
}

// TestRecorderEventsRefusedOnATakenOverRun: B claims the run while A stalls, and
// stores its next event, at the index A's next event has; A wakes before any
// renewal of its lease and appends the events it held. The store refuses them,
// B's event keeps its index, and A gives up on the run, as taken over: its
// durable readers hear nothing past what A stored, and follow the run in the
// store.
func TestRecorderEventsRefusedOnATakenOverRun(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			if _, ok := st.(store.Fencer); !ok {
				t.Skipf("%T is not a store.Fencer", st)
			}
			rec := store.NewRecorder(st, store.RecorderOptions{Replica: "A", Lease: time.Minute, NoRecovery: true})
			defer rec.Close()
			gate := make(chan struct{})
			id := run.NewID()
			x, err := goRun(context.Background(), rec, id, nil, func(x engine.Run) error {
				emit(x, "a", run.EventWorkflowStarted)
				<-gate
				emit(x, "A's", run.EventStepStarted, run.EventStepCompleted)
				<-x.Ctx().Done() // cancelled once A finds the run taken over
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			waitStored(t, st, id, 1)
			claimAs(t, st, id, "B")
			bs := run.Event{Event: run.EventStepStarted, RunID: id, EventIndex: 1, Content: "B's", CreatedAt: time.Now().Unix()}
			data, err := bs.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.AppendEvents(ctx, []store.Event{{RunID: id, Index: 1, Type: bs.Event, Data: data}}); err != nil {
				t.Fatal(err)
			}
			read := 0
			followed := make(chan error, 1)
			go func() {
				_, err := x.Log.FollowDurable(ctx, 0, func(*run.Event) bool { read++; return true })
				followed <- err
			}()
			close(gate)
			x.Wait()
			if err := <-followed; !errors.Is(err, run.ErrLost) || read != 1 {
				t.Errorf("A's durable reader read %d events, then %v; want 1, then run.ErrLost", read, err)
			}
			out := x.Output()
			if out.Status != run.StatusCancelled || out.Reason != store.ReasonTakenOver {
				t.Errorf("A's run ended %s (%q), want CANCELLED %q", out.Status, out.Reason, store.ReasonTakenOver)
			}
			if err := x.PersistErr(); !errors.Is(err, store.ErrTakenOver) {
				t.Errorf("A's PersistErr = %v, want ErrTakenOver", err)
			}
			evs, err := st.Events(ctx, id, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 || string(evs[1].Data) != string(data) {
				for _, ev := range evs {
					t.Logf("stored event %d: %s", ev.Index, ev.Data)
				}
				t.Fatalf("stored %d events; want A's first, then B's %s", len(evs), data)
			}
			if final, err := st.GetRun(ctx, id); err != nil || final.Replica != "B" || final.Status != run.StatusRunning {
				t.Errorf("run claimed by B: stored %v (%v)", final, err)
			}
		})
	}
}

// waitStored waits until the run's record, A's, and n of its events are stored.
func waitStored(t *testing.T, st store.Store, id string, n int) {
	t.Helper()
	ctx := context.Background()
	eventually.Succeeds(t, 5*time.Second, func() error {
		got, err := st.GetRun(ctx, id)
		evs, _ := st.Events(ctx, id, 0, 0)
		if err != nil || got.Replica != "A" || len(evs) < n {
			return fmt.Errorf("run not stored: %v, %d events (%v)", got, len(evs), err)
		}
		return nil
	})
}

// claimAs writes the record of the run as replica's claim of it would, once A's
// lease lapsed while A stalled: RUNNING, replica's, with a live lease.
func claimAs(t *testing.T, st store.Store, id, replica string) {
	t.Helper()
	ctx := context.Background()
	got, err := st.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got.Replica, got.Status, got.LeaseUntil = replica, run.StatusRunning, time.Now().Add(time.Hour)
	if err := st.UpdateRun(ctx, got); err != nil {
		t.Fatal(err)
	}
}
