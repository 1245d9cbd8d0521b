package host

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// countedIntents is a store that counts the cancel intents stored through it.
type countedIntents struct {
	*sqlite.Store
	n *atomic.Int32
}

func (s countedIntents) CancelRun(ctx context.Context, id, reason string) error {
	s.n.Add(1)
	return s.Store.CancelRun(ctx, id, reason)
}

// TestCancelStoredEndIsTheDurableFact: a waiting cancel of a run executing here
// answers once the run's CANCELLED end is stored, which no process taking the run
// over could reverse: it stores no intent besides, which would cost the store's
// writer a transaction ahead of the end's. A cancel that does not wait stores the
// intent before it answers.
func TestCancelStoredEndIsTheDurableFact(t *testing.T) {
	for _, tc := range []struct {
		name        string
		wait        bool
		elsewhere   bool // the runs are recorded by the caller's recorder, on another store
		wantIntents int32
	}{
		{name: "wait", wait: true, wantIntents: 0},
		{name: "no wait", wait: false, wantIntents: 1},
		{name: "wait, recorded elsewhere", wait: true, elsewhere: true, wantIntents: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := countedIntents{sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")), new(atomic.Int32)}
			opts := Options{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, NoRecovery: true}
			var recorded store.Store = st
			if tc.elsewhere {
				recorded = sqliteStore(t, filepath.Join(t.TempDir(), "other.db"))
				rec := store.NewRecorder(recorded, store.RecorderOptions{})
				t.Cleanup(func() { rec.Close() }) // after the host's shutdown
				opts.Recorder = rec
			}
			h := startHost(t, st, opts)
			r := untilContent(t, h, "story")
			got, known, err := h.Cancel(context.Background(), r.ID(), "", tc.wait)
			if err != nil || !known || tc.wait && got != run.StatusCancelled {
				t.Fatalf("cancel: %s known %v err %v; want CANCELLED (or RUNNING without wait), known", got, known, err)
			}
			if n := st.n.Load(); n != tc.wantIntents {
				t.Errorf("%d intents stored, want %d", n, tc.wantIntents)
			}
			out := r.Exec().Wait()
			rec, err := recorded.GetRun(context.Background(), r.ID())
			if out.Status != run.StatusCancelled || err != nil || rec.Status != run.StatusCancelled {
				t.Fatalf("run ended %s, stored %v (%v); want CANCELLED both", out.Status, rec, err)
			}
		})
	}
}
