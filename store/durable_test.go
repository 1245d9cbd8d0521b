package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestRecorderTellsOnlyWhatIsStored: a durable reader of a recorded run reads each
// event once the store holds it, and the run's terminal event once its end is
// stored.
func TestRecorderTellsOnlyWhatIsStored(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			rec := store.NewRecorder(st, store.RecorderOptions{})
			defer rec.Close()
			w := twoSteps(rec, scripted.New("once upon a time"))
			x, err := w.Start(t.Context(), "go")
			if err != nil {
				t.Fatal(err)
			}
			read := 0
			var problems []string
			_, err = x.Log.FollowDurable(t.Context(), 0, func(ev *run.Event) bool {
				ctx := context.Background()
				if evs, err := st.Events(ctx, x.ID, ev.EventIndex, 1); err != nil || len(evs) != 1 {
					problems = append(problems, fmt.Sprintf("event %d %s read before it was stored (%v)", ev.EventIndex, ev.Event, err))
				}
				if ev.Event.Terminal() && ev.RunID == x.ID {
					if got, err := st.GetRun(ctx, x.ID); err != nil || !got.Status.Terminal() {
						problems = append(problems, fmt.Sprintf("terminal event %s read before the end was stored (%v)", ev.Event, err))
					}
				}
				read++
				return true
			})
			if err != nil || read != x.Log.Len() || len(problems) > 0 {
				t.Fatalf("FollowDurable read %d of %d events, %v: %v", read, x.Log.Len(), err, problems)
			}
		})
	}
}

// TestRecorderLosesARunItGivesUpOn: once the recorder gives up on a run (its store
// went away for longer than its lease, or another replica took it over), its
// durable readers stop at what was stored, with run.ErrLost, and never read the
// end the run makes here.
func TestRecorderLosesARunItGivesUpOn(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, st *memStore, clk *store.TestClock, id string)
		want run.Status // the run's end here
	}{
		{"store away past the lease", func(t *testing.T, st *memStore, clk *store.TestClock, id string) {
			st.breakWith(errors.New("database is gone"))
			clk.Advance(2 * time.Second)
		}, run.StatusError},
		{"taken over", func(t *testing.T, st *memStore, clk *store.TestClock, id string) {
			claimAs(t, st, id, "B")
			clk.Advance(time.Second / 3)
		}, run.StatusCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newMemStore()
			clk := store.NewTestClock()
			rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{Replica: "A", Lease: time.Second,
				FlushInterval: time.Millisecond, NoRecovery: true}, clk))
			defer rec.Close()
			gate := make(chan struct{})
			id := run.NewID()
			x, err := goRun(context.Background(), rec, id, nil, func(x engine.Run) error {
				emit(x, "a", run.EventWorkflowStarted, run.EventStepStarted)
				<-gate
				emit(x, "b", run.EventRunContent, run.EventRunContent)
				<-x.Ctx().Done()
				return context.Cause(x.Ctx())
			})
			if err != nil {
				t.Fatal(err)
			}
			waitStored(t, st, id, 2)
			reader := make(chan error, 1)
			var read []int
			var next int
			go func() {
				var err error
				next, err = x.Log.FollowDurable(context.Background(), 0, func(ev *run.Event) bool {
					read = append(read, ev.EventIndex)
					return true
				})
				reader <- err
			}()
			close(gate) // events the store may not hold
			tt.lose(t, st, clk, id)
			err = <-reader
			if out := x.Wait(); out.Status != tt.want {
				t.Errorf("the run ended %s here, want %s", out.Status, tt.want)
			}
			stored, _ := st.Events(context.Background(), id, 0, 0)
			if !errors.Is(err, run.ErrLost) || next != len(stored) || len(read) != next {
				t.Errorf("FollowDurable read %v, returned %d, %v; want the %d stored events, then ErrLost", read, next, err, len(stored))
			}
			if x.Log.Len() <= next {
				t.Errorf("the run emitted %d events, %d told: the test wants its end untold", x.Log.Len(), next)
			}
		})
	}
}

// TestRecorderRunNeverStoredDoesNotStart: a run whose record the store refuses
// does not start (Begin answers once the record is stored), so no client is told
// anything of a run no store holds.
func TestRecorderRunNeverStoredDoesNotStart(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{})
	defer rec.Close()
	id := run.NewID()
	if err := st.CreateRun(t.Context(), &store.Run{ID: id, Status: run.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	var started atomic.Bool
	x, err := goRun(context.Background(), rec, id, nil, func(x engine.Run) error {
		started.Store(true)
		return nil
	})
	if err == nil {
		x.Wait() // started after all: its body ran, or runs now
	}
	if !errors.Is(err, store.ErrExists) || started.Load() {
		t.Errorf("a run whose record was refused: started %v, err %v; want not started, ErrExists", started.Load(), err)
	}
}
