package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"kern/agent"
	"kern/model/scripted"
	"kern/run"
	"kern/store"
	"kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is a Store in memory for the recorder's own tests; the backends run the
// behavioural suite in storetest. broken makes every write fail.
type memStore struct {
	mu     sync.Mutex
	runs   map[string]store.Run
	events map[string][]store.Event
	broken error
	writes int
}

func newMemStore() *memStore {
	return &memStore{runs: map[string]store.Run{}, events: map[string][]store.Event{}}
}

func (m *memStore) CreateRun(ctx context.Context, r *store.Run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return m.broken
	}
	if _, ok := m.runs[r.ID]; ok {
		return store.ErrExists
	}
	m.runs[r.ID] = *r
	return nil
}

func (m *memStore) UpdateRun(ctx context.Context, r *store.Run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return m.broken
	}
	m.runs[r.ID] = *r
	return nil
}

func (m *memStore) GetRun(ctx context.Context, id string) (*store.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &r, nil
}

func (m *memStore) ListRuns(context.Context, store.RunQuery) ([]*store.Run, error) { return nil, nil }

func (m *memStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return m.broken
	}
	m.writes++
	for _, ev := range evs {
		m.events[ev.RunID] = append(m.events[ev.RunID], ev)
	}
	return nil
}

func (m *memStore) Events(ctx context.Context, runID string, from, limit int) ([]store.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.Event(nil), m.events[runID]...), nil
}

func (m *memStore) GetSession(context.Context, string) (*store.Session, error) {
	return nil, store.ErrNotFound
}
func (m *memStore) SaveSession(context.Context, *store.Session) error { return nil }
func (m *memStore) DeleteSession(context.Context, string) error       { return nil }
func (m *memStore) RenewLeases(context.Context, string, []string, time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.broken
}
func (m *memStore) Interrupt(context.Context, time.Time, string) ([]*store.Run, error) {
	return nil, nil
}
func (m *memStore) Close() error { return nil }

func (m *memStore) breakWith(err error) {
	m.mu.Lock()
	m.broken = err
	m.mu.Unlock()
}

func twoSteps(rec run.Recorder, model *scripted.Model) *workflow.Workflow {
	return &workflow.Workflow{Name: "wf", Recorder: rec, Steps: []workflow.Step{
		workflow.AgentStep("research", &agent.Agent{Name: "R", Model: scripted.New("facts one two")}, ""),
		workflow.AgentStep("writing", &agent.Agent{Name: "W", Model: model}, ""),
	}}
}

func TestRecorderPersistsARun(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{Replica: "r1"})
	defer rec.Close()
	w := twoSteps(rec, scripted.New("the story"))
	out, err := w.Run(t.Context(), "go", run.WithSessionID("s1"))
	if err != nil {
		t.Fatal(err)
	}
	// Run returned: the end is durable.
	got, err := st.GetRun(t.Context(), out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != run.StatusCompleted || got.Output.Content != "the story" || got.Kind != store.KindWorkflow ||
		got.ComponentID != "wf" || got.SessionID != "s1" || got.Replica != "r1" || len(got.Output.StepResults) != 2 {
		t.Errorf("stored run = %+v", got)
	}
	evs, _ := st.Events(t.Context(), out.RunID, 0, 0)
	if len(evs) != 17 { // WorkflowStarted, 8 for research (3 chunks), 7 for writing (2), WorkflowCompleted
		t.Fatalf("%d events stored, want 17", len(evs))
	}
	for i, ev := range evs {
		var back run.Event
		if ev.Index != i || json.Unmarshal(ev.Data, &back) != nil || back.Event != ev.Type || back.EventIndex != i {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
}

func TestRecorderKeepsCancelledRunsPartialContent(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{})
	defer rec.Close()
	w := twoSteps(rec, &scripted.Model{Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour})
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
		return !(ev.Event == run.EventRunContent && ev.StepName == "writing")
	})
	if st, err := w.CancelRun(t.Context(), id); st != run.StatusCancelled || err != nil {
		t.Fatalf("CancelRun = %s, %v", st, err)
	}
	// CancelRun returned: the cancelled state is durable.
	got, err := st.GetRun(t.Context(), id)
	if err != nil || got.Status != run.StatusCancelled || got.Output.Content != "Once " ||
		got.Output.StepResults[0].Content != "facts one two" {
		t.Fatalf("stored run = %+v, %v", got, err)
	}
	evs, _ := st.Events(t.Context(), id, 0, 0)
	if last := evs[len(evs)-1]; last.Type != run.EventWorkflowCancelled || len(evs) != x.Log.Len() {
		t.Errorf("stored %d of %d events, last %s", len(evs), x.Log.Len(), last.Type)
	}
}

// A store that goes away mid-run ends the run ERROR with the store's error; it does
// not hang. With nothing to write (the model is stalled), the lease renewal finds out.
func TestRecorderStoreGoesAway(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{FlushInterval: time.Millisecond, Lease: 30 * time.Millisecond})
	defer rec.Close()
	w := twoSteps(rec, &scripted.Model{Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour})
	x, err := w.Start(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
		return !(ev.Event == run.EventRunContent && ev.StepName == "writing")
	})
	gone := errors.New("database is gone")
	st.breakWith(gone)
	out := x.Wait()
	if out.Status != run.StatusError || !errors.Is(out.Err(), gone) {
		t.Fatalf("output = %s %q; want ERROR with the store's error", out.Status, out.Error)
	}
	if err := x.PersistErr(); !errors.Is(err, gone) {
		t.Errorf("PersistErr = %v", err)
	}
}

// A run whose record cannot be written ends ERROR: no run goes unrecorded.
func TestRecorderWhenStoreIsDown(t *testing.T) {
	st := newMemStore()
	down := errors.New("connection refused")
	st.breakWith(down)
	rec := store.NewRecorder(st, store.RecorderOptions{})
	defer rec.Close()
	// The writer streams one word, then waits: the run cannot end before the
	// recorder tried to write its record.
	w := twoSteps(rec, &scripted.Model{Turns: []scripted.Turn{{Text: "x y"}}, Delay: time.Hour})
	out, err := w.Run(t.Context(), "go")
	if out.Status != run.StatusError || !errors.Is(err, down) {
		t.Fatalf("Run = %s, %v; want ERROR with the store's error", out.Status, err)
	}
}

func TestRecorderRefusesOversizedInput(t *testing.T) {
	rec := store.NewRecorder(newMemStore(), store.RecorderOptions{})
	defer rec.Close()
	w := twoSteps(rec, scripted.New("x"))
	if _, err := w.Run(t.Context(), strings.Repeat("x", store.MaxValueSize+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestRecorderManyConcurrentRuns(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{})
	defer rec.Close()
	w := twoSteps(rec, scripted.New("a b c d"))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := w.Run(t.Context(), "go"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.runs) != 50 {
		t.Errorf("%d runs stored", len(st.runs))
	}
	for id, r := range st.runs {
		if r.Status != run.StatusCompleted || len(st.events[id]) != 19 {
			t.Errorf("run %s: %s with %d events", id, r.Status, len(st.events[id]))
		}
	}
	t.Logf("%d event writes for 50 runs", st.writes)
}
