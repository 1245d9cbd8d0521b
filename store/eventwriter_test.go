package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// copyingStore is a memStore that copies the events' Data it stores, and says so
// (see store.EventsCopier).
type copyingStore struct{ *memStore }

func (c copyingStore) CopiesEvents() {}

func (c copyingStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	cp := make([]store.Event, len(evs))
	for i, ev := range evs {
		cp[i] = ev
		cp[i].Data = bytes.Clone(ev.Data)
	}
	return c.memStore.AppendEvents(ctx, cp)
}

// TestRecorderEventsJSON runs many runs at once through a Recorder on a store that
// keeps the events' Data it is given, on one that copies it, and on SQLite (which
// copies it, and writes a run's last events with its end): the Recorder reuses
// its buffer from one write to the next on the last two. Either way every stored
// event is the run's event of its index, whole.
func TestRecorderEventsJSON(t *testing.T) {
	for name, open := range map[string]func(testing.TB) store.Store{
		"keeps":  func(testing.TB) store.Store { return newMemStore() },
		"copies": func(testing.TB) store.Store { return copyingStore{newMemStore()} },
		"sqlite": backends(t)["sqlite"],
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			rec := store.NewRecorder(st, store.RecorderOptions{})
			defer rec.Close()
			w := twoSteps(rec, scripted.New("a b c d"))
			ids := make([]string, 40)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					out, err := w.Run(t.Context(), "go")
					if err != nil {
						t.Error(err)
						return
					}
					ids[i] = out.RunID
				})
			}
			wg.Wait()
			for _, id := range ids {
				evs, err := st.Events(t.Context(), id, 0, 0)
				if err != nil || len(evs) != 23 {
					t.Errorf("run %s: %d events stored, want 23 (%v)", id, len(evs), err)
				}
				for i, ev := range evs {
					var back struct {
						Event         run.EventType `json:"event"`
						RunID         string        `json:"run_id"`
						WorkflowRunID string        `json:"workflow_run_id"`
						EventIndex    int           `json:"event_index"`
					}
					if err := json.Unmarshal(ev.Data, &back); err != nil || ev.Index != i || back.EventIndex != i ||
						back.Event != ev.Type || back.RunID != id && back.WorkflowRunID != id {
						t.Errorf("run %s: event %d = %d %s (%v)", id, i, ev.Index, ev.Data, err)
					}
				}
			}
		})
	}
}
