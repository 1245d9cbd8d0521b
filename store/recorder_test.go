package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
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
	old, ok := m.runs[r.ID]
	if !ok {
		return store.ErrNotFound
	}
	if r.Status.Terminal() && r.Replica != "" && old.Replica != r.Replica && !old.Status.Terminal() &&
		!old.LeaseUntil.IsZero() && !old.LeaseUntil.Before(time.Now()) {
		return store.ErrTakenOver
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
	var evs []store.Event
	for _, ev := range m.events[runID] {
		if ev.Index >= from && (limit == 0 || len(evs) < limit) {
			evs = append(evs, ev)
		}
	}
	return evs, nil
}

func (m *memStore) GetSession(context.Context, string) (*store.Session, error) {
	return nil, store.ErrNotFound
}
func (m *memStore) SaveSession(context.Context, *store.Session) error { return nil }
func (m *memStore) DeleteSession(context.Context, string) error       { return nil }
func (m *memStore) ListSessions(context.Context, store.SessionQuery) ([]*store.Session, int, error) {
	return nil, 0, nil
}
func (m *memStore) RenewLeases(ctx context.Context, replica string, ids []string, until time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return nil, m.broken
	}
	var lost []string
	for _, id := range ids {
		r, ok := m.runs[id]
		if !ok || r.Replica != replica || r.Status != run.StatusRunning && r.Status != run.StatusPending {
			lost = append(lost, id)
			continue
		}
		r.LeaseUntil = until
		m.runs[id] = r
	}
	return lost, nil
}
func (m *memStore) Interrupt(ctx context.Context, now time.Time, reason string) ([]*store.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return nil, m.broken
	}
	var ended []*store.Run
	for id, r := range m.runs {
		if lapsed(&r, now) {
			r.Status, r.Output.Status, r.Output.Error = run.StatusError, run.StatusError, reason
			m.runs[id] = r
			ended = append(ended, &r)
		}
	}
	return ended, nil
}

// lapsed reports whether r was left behind: RUNNING, or PENDING but not queued, with a
// lease that lapsed before now.
func lapsed(r *store.Run, now time.Time) bool {
	return r.LeaseUntil.Before(now) && (r.Status == run.StatusRunning || r.Status == run.StatusPending && !r.LeaseUntil.IsZero())
}
func (m *memStore) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken != nil {
		return nil, m.broken
	}
	var claimed []*store.Run
	for id, r := range m.runs {
		if !lapsed(&r, now) || len(claimed) == limit {
			continue
		}
		r.Status, r.Replica, r.LeaseUntil = run.StatusRunning, replica, until
		m.runs[id] = r
		claimed = append(claimed, &r)
	}
	return claimed, nil
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
	if got.Status != run.StatusCompleted || got.Output.Content != "the story" || got.Kind != run.KindWorkflow ||
		got.ComponentID != "wf" || got.SessionID != "s1" || got.Replica != "r1" || len(got.Output.StepResults) != 2 {
		t.Errorf("stored run = %+v", got)
	}
	evs, _ := st.Events(t.Context(), out.RunID, 0, 0)
	if len(evs) != 21 { // WorkflowStarted, 10 for research (3 chunks), 9 for writing (2), WorkflowCompleted
		t.Fatalf("%d events stored, want 21", len(evs))
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

// A store that goes away mid-run for longer than the run's lease ends the run ERROR
// with the store's error; it does not hang. With nothing to write (the model is
// stalled), the lease renewal finds out. The leases' clock is advanced past the
// lease, and the renewal it triggers fails.
func TestRecorderStoreGoesAway(t *testing.T) {
	st := newMemStore()
	const lease = 30 * time.Millisecond
	clk := store.NewTestClock()
	rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{FlushInterval: time.Millisecond, Lease: lease}, clk))
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
	clk.Advance(2 * lease)
	out := x.Wait()
	if out.Status != run.StatusError || !errors.Is(out.Err(), gone) {
		t.Fatalf("output = %s %q; want ERROR with the store's error", out.Status, out.Error)
	}
	if err := x.PersistErr(); !errors.Is(err, gone) {
		t.Errorf("PersistErr = %v", err)
	}
}

// A run whose record cannot be stored does not start, and the error says why: a
// failure the store does not explain is tried again while the run's lease lasts.
func TestRecorderWhenStoreIsDown(t *testing.T) {
	st := newMemStore()
	down := errors.New("connection reset by peer")
	st.breakWith(down)
	rec := store.NewRecorder(st, store.RecorderOptions{Lease: 50 * time.Millisecond})
	defer rec.Close()
	out, err := twoSteps(rec, scripted.New("x y")).Run(t.Context(), "go")
	if out != nil || !errors.Is(err, down) {
		t.Fatalf("Run = %v, %v; want no run and the store's error", out, err)
	}
}

// A store that cannot take writes now (a full disk) refuses a run at once, before
// it does anything: its lease (an hour) is not waited for.
func TestRecorderBeginUnavailable(t *testing.T) {
	st := newMemStore()
	full := &store.UnavailableError{Err: errors.New("database or disk is full (13)"), Lasting: true}
	st.breakWith(full)
	rec := store.NewRecorder(st, store.RecorderOptions{Lease: time.Hour})
	defer rec.Close()
	out, err := twoSteps(rec, scripted.New("x y")).Run(t.Context(), "go")
	if out != nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "database or disk is full") {
		t.Fatalf("Run = %v, %v; want no run and the store's error", out, err)
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
		if r.Status != run.StatusCompleted || len(st.events[id]) != 23 {
			t.Errorf("run %s: %s with %d events", id, r.Status, len(st.events[id]))
		}
	}
	t.Logf("%d event writes for 50 runs", st.writes)
}

// A checkpoint that cannot be written within the run's lease returns the store's
// error; it does not hang.
func TestRecorderCheckpointStoreDown(t *testing.T) {
	st := newMemStore()
	down := errors.New("connection refused")
	const lease = 50 * time.Millisecond
	clk := store.NewTestClock()
	rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{FlushInterval: time.Hour, Lease: lease}, clk))
	defer rec.Close()
	checkpointed, release := make(chan error, 1), make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		<-release
		emit(x, "", run.EventWorkflowStarted)
		err := rec.Checkpoint(t.Context(), x.X, []run.StepResult{{StepName: "one", Status: run.StatusCompleted}})
		checkpointed <- err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st.breakWith(down) // the run's record is stored: its events and checkpoint are not
	close(release)
	clk.Advance(2 * lease) // past the lease the run began with
	if err := <-checkpointed; !errors.Is(err, down) {
		t.Errorf("Checkpoint = %v, want the store's error", err)
	}
	if out := x.Wait(); out.Status != run.StatusError {
		t.Errorf("run ended %s", out.Status)
	}
}

// Checkpoint answers ErrClosed once the recorder is closed.
func TestRecorderCheckpointClosed(t *testing.T) {
	rec := store.NewRecorder(newMemStore(), store.RecorderOptions{})
	release := make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		<-release
		return rec.Checkpoint(t.Context(), x.X, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close()
	close(release)
	if out := x.Wait(); !errors.Is(out.Err(), store.ErrClosed) {
		t.Errorf("run ended %s %q, want ErrClosed from its checkpoint", out.Status, out.Error)
	}
}

// A run that ends while the store is down waits for its end to be written, and
// learns, once its lease has lapsed, that it was not: its End does not hang.
func TestRecorderEndOutlastsLease(t *testing.T) {
	st := &flaky{Store: newMemStore(), failed: make(chan failedWrite, 64)}
	const lease = 50 * time.Millisecond
	clk := store.NewTestClock()
	rec := store.NewRecorder(st, store.WithClock(store.RecorderOptions{FlushInterval: time.Millisecond, Lease: lease}, clk))
	defer rec.Close()
	ready, release := make(chan error, 1), make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		emit(x, "", run.EventWorkflowStarted)
		err := rec.Checkpoint(t.Context(), x.X, nil) // the record is stored
		ready <- err
		<-release
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		close(release)
		t.Fatalf("Checkpoint before the outage: %v", err)
	}
	down := errors.New("connection reset by peer")
	st.setDown(down)
	close(release)
	for w := range st.failed {
		if w.op == "AppendEvents" {
			break // the end waits for its events, whose write failed
		}
	}
	clk.Advance(2 * lease)
	if out := x.Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("run ended %s %q", out.Status, out.Error)
	}
	if err := x.PersistErr(); !errors.Is(err, down) {
		t.Errorf("PersistErr = %v, want the store's error", err)
	}
	if got, err := st.GetRun(t.Context(), x.ID); err != nil || got.Status != run.StatusRunning {
		t.Errorf("stored run = %+v, %v; want it left RUNNING, to its lease", got, err)
	}
}

// Close does not wait for a store that is down: the end it could not write is
// answered with ErrClosed and the store's error.
func TestRecorderCloseDuringOutage(t *testing.T) {
	st := &flaky{Store: newMemStore(), failed: make(chan failedWrite, 64)}
	rec := store.NewRecorder(st, store.RecorderOptions{FlushInterval: time.Millisecond, Lease: time.Hour})
	ready, release := make(chan error, 1), make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		emit(x, "", run.EventWorkflowStarted)
		err := rec.Checkpoint(t.Context(), x.X, nil) // the record is stored
		ready <- err
		<-release
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		close(release)
		t.Fatalf("Checkpoint before the outage: %v", err)
	}
	down := errors.New("connection refused")
	st.setDown(down)
	close(release)
	for w := range st.failed {
		if w.op == "AppendEvents" {
			break // the end waits for its events
		}
	}
	select {
	case <-x.Done():
		t.Fatal("the run's End returned while its end was being retried")
	default:
	}
	rec.Close()
	if err := x.PersistErr(); !errors.Is(err, store.ErrClosed) || !errors.Is(err, down) {
		t.Errorf("PersistErr = %v, want ErrClosed with the store's error", err)
	}
}

// lostAnswer is a store whose first CreateRun stores the run but fails as if the
// connection broke before its answer.
type lostAnswer struct {
	*memStore
	once sync.Once
}

func (l *lostAnswer) CreateRun(ctx context.Context, r *store.Run) error {
	err := l.memStore.CreateRun(ctx, r)
	l.once.Do(func() {
		if err == nil {
			err = errors.New("unexpected EOF")
		}
	})
	return err
}

// A run whose record was stored by a CreateRun whose answer was lost is not taken
// for another run with its id when the recorder tries again.
func TestRecorderCreateRunAnswerLost(t *testing.T) {
	st := &lostAnswer{memStore: newMemStore()}
	rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me"})
	defer rec.Close()
	out, err := twoSteps(rec, scripted.New("the story")).Run(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetRun(t.Context(), out.RunID); err != nil || got.Status != run.StatusCompleted {
		t.Fatalf("stored run = %+v, %v", got, err)
	}
	if evs, _ := st.Events(t.Context(), out.RunID, 0, 0); len(evs) != 21 {
		t.Errorf("%d events stored, want 21", len(evs))
	}
}

// Recovery finds the last event of a run left behind however many it has, and
// stores the terminal event after it.
func TestRecoveryAfterManyEvents(t *testing.T) {
	st := newMemStore()
	dead := storedRun(run.StatusRunning, "dead", time.Now().Add(-time.Second))
	if err := st.CreateRun(t.Context(), dead); err != nil {
		t.Fatal(err)
	}
	const n = 2500 // more than recovery reads at a time
	seedEvents(t, st, dead.ID, n)
	recovered := make(chan []*store.Run, 1)
	rec := store.NewRecorder(st, store.RecorderOptions{OnRecover: func(runs []*store.Run, err error) {
		if err != nil {
			t.Error(err)
		}
		recovered <- runs
	}})
	defer rec.Close()
	if runs := <-recovered; len(runs) != 1 || runs[0].ID != dead.ID {
		t.Fatalf("recovered %v", runs)
	}
	checkInterrupted(t, st, dead, n)
}

// A checkpoint, and then the run's end, that a store with a full disk cannot take
// say so at once, with the store's words: the run's lease (an hour) is not waited
// for. The run stays RUNNING in the store, for recovery to take over once space
// returns.
func TestRecorderDiskFull(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{Lease: time.Hour})
	defer rec.Close()
	full := &store.UnavailableError{Err: errors.New("database or disk is full (13)"), Lasting: true}
	release := make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		<-release
		emit(x, "", run.EventWorkflowStarted)
		return rec.Checkpoint(t.Context(), x.X, []run.StepResult{{StepName: "research", Status: run.StatusCompleted}})
	})
	if err != nil {
		t.Fatal(err)
	}
	st.breakWith(full)
	close(release)
	out := x.Wait()
	if out.Status != run.StatusError || !errors.Is(out.Err(), store.ErrUnavailable) ||
		out.Error != "store: database or disk is full (13)" {
		t.Errorf("run ended %s %q; want ERROR with the store's words", out.Status, out.Error)
	}
	if err := x.PersistErr(); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("PersistErr = %v, want the store's error", err)
	}
	st.breakWith(nil)
	if got, err := st.GetRun(t.Context(), x.ID); err != nil || got.Status != run.StatusRunning {
		t.Errorf("stored run = %+v, %v; want it left RUNNING, to its lease", got, err)
	}
}

// A checkpoint whose write fails because the way to the store is cut (a refused
// connection: unavailable, not lasting) waits for the store within the run's
// lease, and succeeds once it is back.
func TestRecorderCheckpointWaitsForAConnection(t *testing.T) {
	st := &flaky{Store: newMemStore(), failed: make(chan failedWrite, 64)}
	rec := store.NewRecorder(st, store.RecorderOptions{FlushInterval: time.Millisecond, Lease: time.Hour})
	defer rec.Close()
	checkpointed, release := make(chan error, 1), make(chan struct{})
	x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		<-release
		emit(x, "", run.EventWorkflowStarted)
		err := rec.Checkpoint(t.Context(), x.X, []run.StepResult{{StepName: "research", Status: run.StatusCompleted}})
		checkpointed <- err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st.setDown(&store.UnavailableError{Err: errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")})
	close(release)
	// Once the write of its events failed twice, the first failure was dealt with.
	for n := 0; n < 2; {
		if w := <-st.failed; w.op == "AppendEvents" {
			n++
		}
	}
	select {
	case err := <-checkpointed:
		t.Fatalf("Checkpoint returned %v while the connection was down", err)
	default:
	}
	st.setDown(nil)
	if err := <-checkpointed; err != nil {
		t.Fatalf("Checkpoint once the store was back: %v", err)
	}
	if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
		t.Errorf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
	}
}

// TestRecorderEndAheadOfLiveEvents: a run's end, with the events before it, is
// written at once, while another run's live events wait for the window of the
// bulk writes (here an hour): what a caller waits for (a cancel, the run's End)
// does not queue behind events that only wait to be streamed.
func TestRecorderEndAheadOfLiveEvents(t *testing.T) {
	st := newMemStore()
	rec := store.NewRecorder(st, store.RecorderOptions{FlushInterval: time.Hour, Lease: time.Hour})
	defer rec.Close()
	emitNow, emitted, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	live, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		<-emitNow
		emit(x, "live", run.EventWorkflowStarted)
		close(emitted)
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ending, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
		close(emitNow) // once both runs' records are stored
		<-emitted
		emit(x, "ending", run.EventWorkflowStarted, run.EventStepStarted)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := ending.Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("ending run: %s %q", out.Status, out.Error)
	}
	got, err := st.GetRun(t.Context(), ending.ID)
	if err != nil || got.Status != run.StatusCompleted {
		t.Fatalf("ending run's record: %+v, %v", got, err)
	}
	if evs, _ := st.Events(t.Context(), ending.ID, 0, 0); len(evs) != 3 {
		t.Errorf("ending run: %d events stored with its end, want 3", len(evs))
	}
	if evs, _ := st.Events(t.Context(), live.ID, 0, 0); len(evs) != 0 {
		t.Errorf("live run: %d events stored within its window, want them to wait", len(evs))
	}
	close(release)
	if out := live.Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("live run: %s %q", out.Status, out.Error)
	}
	if evs, _ := st.Events(t.Context(), live.ID, 0, 0); len(evs) != 2 {
		t.Errorf("live run: %d events stored with its end, want 2", len(evs))
	}
}

// TestCheckpointRecordIsBegins: a checkpoint's record is the record Begin wrote,
// RUNNING with the checkpoint's steps, whatever the run's output became since (the
// recorder keeps no copy of it, but for what Begin had in the fields the run
// changes); the end's record is the output the run ended with.
func TestCheckpointRecordIsBegins(t *testing.T) {
	for _, begun := range []string{"", "so far"} {
		t.Run("content "+begun, func(t *testing.T) {
			st := newMemStore()
			rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me"})
			defer rec.Close()
			id := run.NewID()
			meta := map[string]string{"k": "v"}
			begin := run.Output{RunID: id, SessionID: "s", UserID: "u", WorkflowID: "wf", WorkflowName: "Wf",
				Status: run.StatusRunning, Input: "go", Content: begun, CreatedAt: 42, Metadata: meta}
			out := begin
			steps := []run.StepResult{{StepName: "one", Status: run.StatusCompleted, Content: "facts"}}
			checkpointed, release := make(chan error, 1), make(chan struct{})
			let := sync.OnceFunc(func() { close(release) })
			defer let() // the run is never left waiting, however the test ends
			spec := engine.Spec{
				Registry: new(run.Registry), Recorder: rec, Kind: run.KindWorkflow,
				Base:   &run.Event{RunID: id, Origin: &run.Origin{WorkflowID: "wf"}},
				Output: &out,
			}
			x, err := engine.Go(t.Context(), spec, func(x engine.Run) error {
				o := x.X.Output()
				o.Content, o.Metrics.InputTokens = "changed", 7
				checkpointed <- rec.Checkpoint(t.Context(), x.X, steps)
				<-release
				o.Content = "the end"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-checkpointed; err != nil {
				t.Fatalf("Checkpoint: %v", err)
			}
			got, err := st.GetRun(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			want := begin
			want.StepResults = steps
			if got.ID != id || got.SessionID != "s" || got.UserID != "u" || got.Kind != run.KindWorkflow ||
				got.ComponentID != "wf" || got.Status != run.StatusRunning || got.Input != "go" || got.Replica != "me" ||
				!reflect.DeepEqual(got.Output, want) {
				t.Errorf("checkpoint's record = %+v, want the output %+v", got, want)
			}
			let()
			x.Wait()
			got, err = st.GetRun(t.Context(), id)
			if err != nil || got.Status != run.StatusCompleted || got.Output.Content != "the end" ||
				got.Output.Metrics.InputTokens != 7 || got.ComponentID != "wf" || got.Replica != "me" {
				t.Errorf("end's record = %+v, %v", got, err)
			}
		})
	}
}
