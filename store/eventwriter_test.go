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
// keeps the events' Data it is given and on one that copies it (the Recorder then
// reuses its buffer from one write to the next): either way every stored event is
// the run's event of its index, whole.
func TestRecorderEventsJSON(t *testing.T) {
	for name, wrap := range map[string]func(*memStore) store.Store{
		"keeps":  func(m *memStore) store.Store { return m },
		"copies": func(m *memStore) store.Store { return copyingStore{m} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newMemStore()
			rec := store.NewRecorder(wrap(st), store.RecorderOptions{})
			defer rec.Close()
			w := twoSteps(rec, scripted.New("a b c d"))
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					if _, err := w.Run(t.Context(), "go"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			st.mu.Lock()
			defer st.mu.Unlock()
			for id, evs := range st.events {
				if len(evs) != 23 {
					t.Errorf("run %s: %d events stored, want 23", id, len(evs))
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
