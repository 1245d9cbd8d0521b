package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// backends opens each real store for a test: SQLite in a temp dir, and PostgreSQL in
// a schema of the test's own (skipped, loudly, only when no server answers).
func backends(t testing.TB) map[string]func(testing.TB) store.Store {
	return map[string]func(testing.TB) store.Store{
		"sqlite": func(t testing.TB) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": openPostgres,
	}
}

func openPostgres(t testing.TB) store.Store {
	return openPostgresSchema(t, pgtest.Schema(t))
}

// openPostgresSchema opens a store on schema, closed when the test ends.
func openPostgresSchema(t testing.TB, schema string) store.Store {
	s, err := postgres.Open(context.Background(), pgtest.URL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sharedBackends opens two stores on one database for a test, as two processes
// sharing it would: SQLite on one file, PostgreSQL on one schema.
func sharedBackends() map[string]func(testing.TB) (store.Store, store.Store) {
	return map[string]func(testing.TB) (store.Store, store.Store){
		"sqlite": func(t testing.TB) (store.Store, store.Store) {
			path := filepath.Join(t.TempDir(), "kern.db")
			var two [2]store.Store
			for i := range two {
				s, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				two[i] = s
			}
			return two[0], two[1]
		},
		"postgres": func(t testing.TB) (store.Store, store.Store) {
			schema := pgtest.Schema(t)
			return openPostgresSchema(t, schema), openPostgresSchema(t, schema)
		},
	}
}

func TestPersistedRuns(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("cancel keeps partial output", func(t *testing.T) {
				st := open(t)
				rec := store.NewRecorder(st, store.RecorderOptions{Replica: "test"})
				defer rec.Close()
				w := twoSteps(rec, &scripted.Model{Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour})
				id := run.NewID()
				x, err := w.Start(t.Context(), "go", run.WithID(id), run.WithSessionID("s"))
				if err != nil {
					t.Fatal(err)
				}
				x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
					return !(ev.Event == run.EventRunContent && ev.StepName == "writing")
				})
				if st, err := w.CancelRun(t.Context(), id); st != run.StatusCancelled || err != nil {
					t.Fatalf("CancelRun = %s, %v", st, err)
				}
				got, err := st.GetRun(t.Context(), id)
				if err != nil || got.Status != run.StatusCancelled || got.Output.Content != "Once " ||
					got.Output.StepResults[0].Content != "facts one two" || got.Output.Reason != run.ReasonRequested {
					t.Fatalf("stored run = %+v, %v", got, err)
				}
				evs, err := st.Events(t.Context(), id, 0, 0)
				if err != nil || len(evs) != x.Log.Len() || evs[len(evs)-1].Type != run.EventWorkflowCancelled {
					t.Fatalf("stored %d events of %d, %v", len(evs), x.Log.Len(), err)
				}
			})

			t.Run("session state and history", func(t *testing.T) {
				st := open(t)
				rec := store.NewRecorder(st, store.RecorderOptions{})
				defer rec.Close()
				w := &workflow.Workflow{Name: "counter", Recorder: rec, Steps: []workflow.Step{
					workflow.FuncStep("count", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
						n, _ := in.State.Get("count")
						c, _ := n.(float64) // JSON numbers come back as float64
						in.State.Set("count", c+1)
						return workflow.StepOutput{Content: fmt.Sprint(c + 1)}, nil
					}),
				}}
				for want := 1; want <= 3; want++ {
					out, err := w.Run(t.Context(), "go", run.WithSessionID("s1"))
					if err != nil || out.Content != fmt.Sprint(want) {
						t.Fatalf("run %d = %q, %v", want, out.Content, err)
					}
				}

				var seen []model.Message
				a := &agent.Agent{Name: "chat", Recorder: rec, History: 2, Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
					seen = req.Messages
					return scripted.Turn{Text: "answer to " + req.Messages[len(req.Messages)-1].Content}
				}}}
				for _, q := range []string{"one", "two", "three"} {
					if _, err := a.Run(t.Context(), q, run.WithSessionID("s2")); err != nil {
						t.Fatal(err)
					}
				}
				var got []string
				for _, m := range seen {
					got = append(got, string(m.Role)+":"+m.Content)
				}
				want := "user:one assistant:answer to one user:two assistant:answer to two user:three"
				if strings.Join(got, " ") != want {
					t.Errorf("third run's context = %q, want %q", strings.Join(got, " "), want)
				}
			})

			t.Run("concurrent runs", func(t *testing.T) {
				st := open(t)
				rec := store.NewRecorder(st, store.RecorderOptions{})
				defer rec.Close()
				w := twoSteps(rec, scripted.New("a b c d"))
				var wg sync.WaitGroup
				ids := make([]string, 40)
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
					got, err := st.GetRun(t.Context(), id)
					evs, _ := st.Events(t.Context(), id, 0, 0)
					if err != nil || got.Status != run.StatusCompleted || len(evs) != 23 {
						t.Errorf("run %s: %v, %d events, %v", id, got, len(evs), err)
					}
				}
			})

			t.Run("recover runs left behind", func(t *testing.T) {
				st := open(t)
				now := time.Now()
				dead := &store.Run{ID: run.NewID(), Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning,
					Replica: "dead", LeaseUntil: now.Add(-time.Minute), CreatedAt: now, UpdatedAt: now}
				live := &store.Run{ID: run.NewID(), Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning,
					Replica: "alive", LeaseUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
				for _, r := range []*store.Run{dead, live} {
					if err := st.CreateRun(t.Context(), r); err != nil {
						t.Fatal(err)
					}
				}
				ended, err := store.Recover(t.Context(), st)
				if err != nil || len(ended) != 1 || ended[0].ID != dead.ID {
					t.Fatalf("Recover = %v, %v", ended, err)
				}
				d, _ := st.GetRun(t.Context(), dead.ID)
				l, _ := st.GetRun(t.Context(), live.ID)
				if d.Status != run.StatusError || d.Output.Error != store.ReasonInterrupted || l.Status != run.StatusRunning {
					t.Errorf("dead run %s %q, live run %s", d.Status, d.Output.Error, l.Status)
				}
			})
		})
	}
}

// BenchmarkPersistedRuns measures completed two-step runs per second (20 chunks per
// step, every event stored) from one process with many concurrent runs (target on
// SQLite: ≥ 2,000 runs/s), and, as "memory", the same without a store.
func BenchmarkPersistedRuns(b *testing.B) {
	text := strings.Repeat("word ", 20)
	cases := backends(b)
	cases["memory"] = nil
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			var rec *store.Recorder
			w := twoSteps(nil, scripted.New(text))
			w.Steps[0].(*workflow.Task).Agent.Model = scripted.New(text)
			if open := cases[name]; open != nil {
				rec = store.NewRecorder(open(b), store.RecorderOptions{})
				defer rec.Close()
				w.Recorder = rec
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := w.Run(context.Background(), "go"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
		})
	}
}

// BenchmarkPersistedStream measures what persistence adds to one run streamed alone
// (two steps, 20 chunks each): "first" is the time from Start to the first event
// reaching the reader, "end" the time until the stream ended (the terminal event read
// and the run's end durable).
func BenchmarkPersistedStream(b *testing.B) {
	text := strings.Repeat("word ", 20)
	cases := backends(b)
	cases["memory"] = nil
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			w := twoSteps(nil, scripted.New(text))
			w.Steps[0].(*workflow.Task).Agent.Model = scripted.New(text)
			if open := cases[name]; open != nil {
				rec := store.NewRecorder(open(b), store.RecorderOptions{})
				defer rec.Close()
				w.Recorder = rec
			}
			var first time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				seen := false
				for ev := range w.Stream(context.Background(), "go") {
					if !seen {
						first += time.Since(start)
						seen = true
					}
					_ = ev
				}
			}
			b.ReportMetric(float64(first.Microseconds())/float64(b.N), "first-µs")
		})
	}
}

// TestRealStoreGoesAway closes a real store under a running workflow: the run ends
// ERROR with a clear error, and nothing hangs.
func TestRealStoreGoesAway(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
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
	st.Close()
	clk.Advance(2 * lease) // the renewal it triggers fails, and the lease has lapsed
	out := x.Wait()
	if out.Status != run.StatusError || !strings.Contains(out.Error, "store") || !errors.Is(x.PersistErr(), store.ErrClosed) {
		t.Fatalf("output = %s %q, persist error %v; want ERROR naming the store", out.Status, out.Error, x.PersistErr())
	}
}

// TestRecorderRecoversRunsLeftBehind: a process with a recorder ends the runs a dead
// process left RUNNING, once their lease has lapsed, and never a live one. Each run
// it ends gets its terminal event, after its last stored event and before its
// terminal status, unless its stream has one already.
func TestRecorderRecoversRunsLeftBehind(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := &endWatch{Store: open(t)}
			now := time.Now()
			dead := &store.Run{ID: run.NewID(), SessionID: "s1", Kind: run.KindAgent, ComponentID: "a", Status: run.StatusRunning,
				Input: "hi", Output: run.Output{Content: "partial", AgentID: "a", AgentName: "Research Agent"},
				Replica: "dead", LeaseUntil: now.Add(-time.Second), CreatedAt: now}
			live := &store.Run{ID: run.NewID(), Kind: run.KindAgent, ComponentID: "a", Status: run.StatusRunning,
				Replica: "other", LeaseUntil: now.Add(time.Hour), CreatedAt: now}
			deadFlow := storedRun(run.StatusRunning, "dead", now.Add(-time.Second))
			deadFlow.SessionID, deadFlow.Output.WorkflowName = "s2", "Article flow"
			// A run whose process died after its terminal event, before its record's
			// end: its stream is not given a second one.
			ended := storedRun(run.StatusRunning, "dead", now.Add(-time.Second))
			for _, r := range []*store.Run{dead, live, deadFlow, ended} {
				if err := st.CreateRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
			}
			seedEvents(t, st, deadFlow.ID, 3)
			seedEvents(t, st, ended.ID, 2)
			cancelled := run.Event{Event: run.EventWorkflowCancelled, RunID: ended.ID, EventIndex: 2, Reason: "stop"}
			data, _ := cancelled.AppendJSON(nil)
			if err := st.AppendEvents(t.Context(), []store.Event{{RunID: ended.ID, Index: 2, Type: cancelled.Event, Data: data}}); err != nil {
				t.Fatal(err)
			}
			recovered := make(chan []*store.Run, 1)
			rec := store.NewRecorder(st, store.RecorderOptions{OnRecover: func(runs []*store.Run, err error) {
				if err != nil {
					t.Error(err)
				}
				select {
				case recovered <- runs:
				default:
				}
			}})
			defer rec.Close()
			runs := <-recovered
			var ids []string
			for _, r := range runs {
				ids = append(ids, r.ID)
			}
			if want := []string{dead.ID, deadFlow.ID, ended.ID}; !sameSet(ids, want) {
				t.Fatalf("recovered %v, want %v", ids, want)
			}
			d, _ := st.GetRun(t.Context(), dead.ID)
			l, _ := st.GetRun(t.Context(), live.ID)
			if d.Status != run.StatusError || d.Output.Error != store.ReasonInterrupted || d.Output.Content != "partial" ||
				l.Status != run.StatusRunning {
				t.Errorf("dead: %s %q %q; live: %s", d.Status, d.Output.Error, d.Output.Content, l.Status)
			}
			checkInterrupted(t, st, dead, 0)
			checkInterrupted(t, st, deadFlow, 3)
			for _, r := range []*store.Run{dead, deadFlow} {
				if ev := st.lastBeforeEnd(r.ID); !ev.Type.Terminal() {
					t.Errorf("run %s written ERROR after event %d %s, not after its terminal event", r.ID, ev.Index, ev.Type)
				}
			}
			if evs, err := st.Events(t.Context(), ended.ID, 0, 0); err != nil || len(evs) != 3 || evs[2].Type != run.EventWorkflowCancelled {
				t.Errorf("run ended already: %d events stored (%v)", len(evs), err)
			}
			if evs, _ := st.Events(t.Context(), live.ID, 0, 0); len(evs) != 0 {
				t.Errorf("live run given %d events", len(evs))
			}
		})
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// goRun starts a top-level run of workflow "wf" on rec, as a workflow does, with body
// as its work; rs, when set, makes it continue a stored run.
func goRun(ctx context.Context, rec run.Recorder, id string, rs *run.Resume, body func(x engine.Run) error) (*run.Exec, error) {
	origin := &run.Origin{WorkflowID: "wf", WorkflowName: "wf"}
	spec := engine.Spec{
		Registry: new(run.Registry), Recorder: rec, Kind: run.KindWorkflow, Resume: rs,
		Base:   &run.Event{RunID: id, Origin: origin},
		Output: &run.Output{RunID: id, WorkflowID: "wf", WorkflowName: "wf", Status: run.StatusRunning, Input: "go"},
	}
	return engine.Go(ctx, spec, body)
}

// emit emits events of the given types, with content, to the run's log.
func emit(x engine.Run, content string, types ...run.EventType) {
	for _, typ := range types {
		x.Log.Emit(&run.Event{Event: typ, RunID: x.X.ID, Origin: &run.Origin{WorkflowID: "wf"}, Content: content})
	}
}

// storedRun is a workflow run's record as a process that executes it stores it.
func storedRun(status run.Status, replica string, lease time.Time) *store.Run {
	id := run.NewID()
	return &store.Run{ID: id, Kind: run.KindWorkflow, ComponentID: "wf", Status: status, Input: "go",
		Output:  run.Output{RunID: id, WorkflowID: "wf", Status: status, Input: "go"},
		Replica: replica, LeaseUntil: lease, CreatedAt: time.Now()}
}

// seedEvents stores n events of run id, as a run that stopped after them would have.
func seedEvents(t *testing.T, st store.Store, id string, n int) []store.Event {
	t.Helper()
	evs := make([]store.Event, n)
	for i := range evs {
		ev := run.Event{Event: run.EventStepStarted, RunID: id, EventIndex: i, Content: fmt.Sprint("old ", i), CreatedAt: time.Now().Unix()}
		if i == 0 {
			ev.Event = run.EventWorkflowStarted
		}
		data, err := ev.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = store.Event{RunID: id, Index: i, Type: ev.Event, Data: data, CreatedAt: time.Unix(ev.CreatedAt, 0)}
	}
	if err := st.AppendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// checkEvents checks that run id's stored events are numbered 0, 1, … without a gap
// or a repeat, start with old, and end with the run's terminal event.
func checkEvents(t *testing.T, st store.Store, id string, old []store.Event, last run.EventType) []store.Event {
	t.Helper()
	evs, err := st.Events(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		var back run.Event
		if err := json.Unmarshal(ev.Data, &back); err != nil || ev.Index != i || back.EventIndex != i || back.Event != ev.Type {
			t.Errorf("event %d: index %d, %s, data %s (%v)", i, ev.Index, ev.Type, ev.Data, err)
		}
		if i < len(old) && (ev.Type != old[i].Type || back.Content != fmt.Sprint("old ", i)) {
			t.Errorf("stored event %d changed: %s %s", i, ev.Type, ev.Data)
		}
	}
	if len(evs) <= len(old) || evs[len(evs)-1].Type != last {
		t.Fatalf("%d events stored after the %d old ones, want some ending with %s", len(evs)-len(old), len(old), last)
	}
	return evs
}

// observed is a store that reports the records written through UpdateRun.
type observed struct {
	store.Store
	updates chan store.Run
}

func (o *observed) UpdateRun(ctx context.Context, r *store.Run) error {
	err := o.Store.UpdateRun(ctx, r)
	if err == nil {
		select {
		case o.updates <- *r:
		default: // the test reads only the first ones
		}
	}
	return err
}

// TestResumedRuns: a run that continues a stored one (run.WithResume) updates its
// record instead of creating it, and its events go on from Resume.NextEvent.
func TestResumedRuns(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("events continue the stored ones", func(t *testing.T) {
				st := open(t)
				r := storedRun(run.StatusRunning, "me", time.Now().Add(time.Minute))
				steps := []run.StepResult{{StepName: "research", Content: "facts", Status: run.StatusCompleted}}
				r.Output.StepResults = steps
				if err := st.CreateRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				old := seedEvents(t, st, r.ID, 3)
				rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me", Lease: 2 * time.Second})
				defer rec.Close()
				x, err := goRun(t.Context(), rec, r.ID, &run.Resume{NextEvent: len(old), Steps: steps}, func(x engine.Run) error {
					emit(x, "new", run.EventStepStarted, run.EventRunContent, run.EventStepCompleted)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
					t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
				}
				got, err := st.GetRun(t.Context(), r.ID)
				if err != nil || got.Status != run.StatusCompleted || got.Replica != "me" || got.Input != "go" {
					t.Fatalf("stored run = %+v, %v", got, err)
				}
				evs := checkEvents(t, st, r.ID, old, run.EventWorkflowCompleted)
				if len(evs) != len(old)+4 {
					t.Errorf("%d events stored, want %d", len(evs), len(old)+4)
				}
			})

			t.Run("queued run becomes RUNNING, then ends", func(t *testing.T) {
				obs := &observed{Store: open(t), updates: make(chan store.Run, 16)}
				r := storedRun(run.StatusPending, "", time.Time{})
				if err := obs.CreateRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				rec := store.NewRecorder(obs, store.RecorderOptions{Replica: "worker", Lease: 2 * time.Second})
				defer rec.Close()
				release := make(chan struct{})
				x, err := goRun(t.Context(), rec, r.ID, &run.Resume{}, func(x engine.Run) error {
					emit(x, "", run.EventWorkflowStarted)
					<-release
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var once sync.Once
				let := func() { once.Do(func() { close(release) }) }
				defer func() { let(); x.Wait() }()
				first := <-obs.updates // the first flush
				got, err := obs.GetRun(t.Context(), r.ID)
				if err != nil || first.Status != run.StatusRunning || got.Status != run.StatusRunning ||
					got.Replica != "worker" || !got.LeaseUntil.After(time.Now()) {
					t.Fatalf("record after the first flush = %+v, %v", got, err)
				}
				// Its lease is live: recovery leaves it alone.
				if ended, err := obs.Interrupt(t.Context(), time.Now(), store.ReasonInterrupted); err != nil || len(ended) != 0 {
					t.Errorf("Interrupt = %v, %v", ended, err)
				}
				let()
				if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
					t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
				}
				if got, err := obs.GetRun(t.Context(), r.ID); err != nil || got.Status != run.StatusCompleted {
					t.Errorf("stored run = %+v, %v", got, err)
				}
				checkEvents(t, obs, r.ID, nil, run.EventWorkflowCompleted)
			})

			t.Run("a missing record keeps the run from starting", func(t *testing.T) {
				st := open(t)
				rec := store.NewRecorder(st, store.RecorderOptions{})
				defer rec.Close()
				id := run.NewID()
				x, err := goRun(t.Context(), rec, id, &run.Resume{NextEvent: 4}, func(x engine.Run) error {
					t.Error("the run started")
					return nil
				})
				if x != nil || !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("goRun = %v, %v; want no run, not found", x, err)
				}
				if _, err := st.GetRun(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetRun = %v; the run was created", err)
				}
			})
		})
	}
}

// TestCheckpoint: a checkpoint is in the store, with the events emitted before it,
// once Checkpoint returns, while the run still runs.
func TestCheckpoint(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("run", func(t *testing.T) {
				st := open(t)
				// A long flush interval: the checkpoint does not wait for it.
				rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me", FlushInterval: time.Hour})
				defer rec.Close()
				steps := []run.StepResult{{StepID: "s1", StepName: "research", Content: "facts", Status: run.StatusCompleted}}
				checkpointed, release := make(chan error, 1), make(chan struct{})
				x, err := goRun(t.Context(), rec, run.NewID(), nil, func(x engine.Run) error {
					emit(x, "", run.EventWorkflowStarted, run.EventStepStarted, run.EventStepCompleted)
					checkpointed <- rec.Checkpoint(t.Context(), x.X, steps)
					<-release
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { close(release); x.Wait() }()
				if err := <-checkpointed; err != nil {
					t.Fatalf("Checkpoint: %v", err)
				}
				got, err := st.GetRun(t.Context(), x.ID)
				if err != nil || got.Status != run.StatusRunning || got.Replica != "me" ||
					!reflect.DeepEqual(got.Output.StepResults, steps) || !got.LeaseUntil.After(time.Now()) {
					t.Fatalf("record after the checkpoint = %+v, %v", got, err)
				}
				if evs, err := st.Events(t.Context(), x.ID, 0, 0); err != nil || len(evs) != 3 {
					t.Errorf("%d events stored with the checkpoint, want 3 (%v)", len(evs), err)
				}
			})

			t.Run("workflow", func(t *testing.T) {
				st := open(t)
				rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me"})
				defer rec.Close()
				w := twoSteps(rec, &scripted.Model{Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour})
				id := run.NewID()
				x, err := w.Start(t.Context(), "go", run.WithID(id))
				if err != nil {
					t.Fatal(err)
				}
				defer w.CancelRun(t.Context(), id)
				// The workflow checkpoints the research step before the writing one starts.
				x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
					return !(ev.Event == run.EventRunContent && ev.StepName == "writing")
				})
				got, err := st.GetRun(t.Context(), id)
				if err != nil || got.Status != run.StatusRunning || len(got.Output.StepResults) != 1 ||
					got.Output.StepResults[0].Content != "facts one two" {
					t.Fatalf("record while the second step runs = %+v, %v", got, err)
				}
			})
		})
	}
}

// TestTakeover: with Takeover set, the recorder claims the runs a dead process left
// behind and hands them over; a live run, or a queued one, is never handed over.
func TestTakeover(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("resumed", func(t *testing.T) {
				st := open(t)
				dead := storedRun(run.StatusRunning, "dead", time.Now().Add(-time.Second))
				dead.Output.StepResults = []run.StepResult{{StepName: "research", Content: "facts", Status: run.StatusCompleted}}
				live := storedRun(run.StatusRunning, "other", time.Now().Add(time.Hour))
				queued := storedRun(run.StatusPending, "", time.Time{})
				for _, r := range []*store.Run{dead, live, queued} {
					if err := st.CreateRun(t.Context(), r); err != nil {
						t.Fatal(err)
					}
				}
				old := seedEvents(t, st, dead.ID, 3)

				var (
					mu     sync.Mutex
					handed []string
					rec    *store.Recorder
				)
				ready, started := make(chan struct{}), make(chan *run.Exec, 4)
				takeover := func(ctx context.Context, r *store.Run, _ *store.Tail) error {
					<-ready
					mu.Lock()
					handed = append(handed, r.ID)
					mu.Unlock()
					if r.Status != run.StatusRunning || r.Replica != "me" || len(r.Output.StepResults) != 1 {
						t.Errorf("handed %+v", r)
					}
					next, _ := st.Events(ctx, r.ID, 0, 0)
					x, err := goRun(t.Context(), rec, r.ID, &run.Resume{NextEvent: len(next), Steps: r.Output.StepResults}, func(x engine.Run) error {
						emit(x, "resumed", run.EventStepStarted, run.EventRunContent)
						return nil
					})
					if err != nil {
						t.Error(err)
						return err
					}
					started <- x
					return nil
				}
				rec = store.NewRecorder(st, store.RecorderOptions{Replica: "me", Lease: 2 * time.Second, NoRecovery: true})
				stop := recoverEvery(&store.Recovery{Store: st, Replica: "me", Lease: 2 * time.Second,
					Executes: rec.Executes, Takeover: takeover}, 5*time.Millisecond,
					func(runs []*store.Run, err error) { t.Errorf("OnRecover(%v, %v)", runs, err) })
				close(ready)
				x := <-started
				if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
					t.Fatalf("resumed run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
				}
				got, err := st.GetRun(t.Context(), dead.ID)
				if err != nil || got.Status != run.StatusCompleted || got.Replica != "me" {
					t.Errorf("resumed run stored as %+v, %v", got, err)
				}
				checkEvents(t, st, dead.ID, old, run.EventWorkflowCompleted)
				stop()
				rec.Close()

				if !slices.Equal(handed, []string{dead.ID}) {
					t.Errorf("handed over %v, want only %s", handed, dead.ID)
				}
				if l, err := st.GetRun(t.Context(), live.ID); err != nil || l.Status != run.StatusRunning || l.Replica != "other" {
					t.Errorf("live run = %+v, %v", l, err)
				}
				if q, err := st.GetRun(t.Context(), queued.ID); err != nil || q.Status != run.StatusPending || !q.LeaseUntil.IsZero() || q.Replica != "" {
					t.Errorf("queued run = %+v, %v", q, err)
				}
			})

			t.Run("refused", func(t *testing.T) {
				st := &endWatch{Store: open(t)}
				dead := storedRun(run.StatusRunning, "dead", time.Now().Add(-time.Second))
				dead.SessionID, dead.Output.WorkflowName = "s1", "Article flow"
				dead.Output.Content = "partial"
				dead.Output.StepResults = []run.StepResult{{StepName: "research", Content: "facts", Status: run.StatusCompleted}}
				queued := storedRun(run.StatusPending, "", time.Time{})
				for _, r := range []*store.Run{dead, queued} {
					if err := st.CreateRun(t.Context(), r); err != nil {
						t.Fatal(err)
					}
				}
				seedEvents(t, st, dead.ID, 4)
				recovered := make(chan []*store.Run, 1)
				rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me", Lease: 2 * time.Second, NoRecovery: true})
				defer rec.Close()
				stop := recoverEvery(&store.Recovery{Store: st, Replica: "me", Lease: 2 * time.Second, Executes: rec.Executes,
					Takeover: func(ctx context.Context, r *store.Run, _ *store.Tail) error { return store.ErrNotResumable }},
					2*time.Second/3, func(runs []*store.Run, err error) {
						if err != nil {
							t.Error(err)
						}
						recovered <- runs
					})
				defer stop()
				runs := <-recovered
				if len(runs) != 1 || runs[0].ID != dead.ID || runs[0].Status != run.StatusError {
					t.Fatalf("recovered %+v", runs)
				}
				d, err := st.GetRun(t.Context(), dead.ID)
				if err != nil || d.Status != run.StatusError || d.Output.Error != store.ReasonInterrupted ||
					d.Output.Content != "partial" || len(d.Output.StepResults) != 1 {
					t.Errorf("refused run = %+v, %v", d, err)
				}
				if q, err := st.GetRun(t.Context(), queued.ID); err != nil || q.Status != run.StatusPending {
					t.Errorf("queued run = %+v, %v", q, err)
				}
				checkInterrupted(t, st, dead, 4)
				if ev := st.lastBeforeEnd(dead.ID); ev.Index != 4 || ev.Type != run.EventWorkflowError {
					t.Errorf("run written ERROR after event %d %s, not after its terminal event", ev.Index, ev.Type)
				}
			})
		})
	}
}

// TestTakeoverRace: two processes recovering at once take each run left behind
// exactly once.
func TestTakeoverRace(t *testing.T) {
	const runs = 40
	for name, open := range sharedBackends() {
		t.Run(name, func(t *testing.T) {
			st1, st2 := open(t)
			for range runs {
				if err := st1.CreateRun(t.Context(), storedRun(run.StatusRunning, "dead", time.Now().Add(-time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			type handed struct {
				id, by string
				x      *run.Exec
			}
			all := make(chan handed, 2*runs)
			var stops []func()
			start := make(chan struct{})
			recorder := func(st store.Store, replica string) *store.Recorder {
				var rec *store.Recorder
				ready := make(chan struct{})
				// A lease long enough that no claimed run's lapses during the test,
				// when another claim would take it again, rightly.
				rec = store.NewRecorder(st, store.RecorderOptions{Replica: replica, Lease: 10 * time.Second, NoRecovery: true})
				stops = append(stops, recoverEvery(&store.Recovery{Store: st, Replica: replica, Lease: 10 * time.Second,
					Executes: rec.Executes,
					Takeover: func(ctx context.Context, r *store.Run, _ *store.Tail) error {
						<-ready
						x, err := goRun(t.Context(), rec, r.ID, &run.Resume{}, func(x engine.Run) error {
							emit(x, replica, run.EventWorkflowStarted)
							return nil
						})
						if err != nil {
							t.Error(err)
							return err
						}
						all <- handed{r.ID, replica, x}
						return nil
					}}, 5*time.Millisecond, nil))
				go func() { <-start; close(ready) }()
				return rec
			}
			recs := []*store.Recorder{recorder(st1, "A"), recorder(st2, "B")}
			close(start)
			by := map[string][]string{}
			for range runs {
				select {
				case h := <-all:
					by[h.id] = append(by[h.id], h.by)
					if out := h.x.Wait(); out.Status != run.StatusCompleted {
						t.Errorf("run %s ended %s %q", h.id, out.Status, out.Error)
					}
				case <-time.After(time.Minute):
					t.Fatalf("%d runs handed over, want %d", len(by), runs)
				}
			}
			for _, stop := range stops {
				stop()
			}
			for _, rec := range recs {
				rec.Close()
			}
			close(all)
			for h := range all {
				by[h.id] = append(by[h.id], h.by)
				h.x.Wait()
			}
			count := map[string]int{}
			for id, replicas := range by {
				if len(replicas) != 1 {
					t.Errorf("run %s handed over by %v", id, replicas)
					continue
				}
				count[replicas[0]]++
				got, err := st1.GetRun(t.Context(), id)
				if err != nil || got.Status != run.StatusCompleted || got.Replica != replicas[0] {
					t.Errorf("run %s stored as %+v, %v; taken by %s", id, got, err, replicas[0])
				}
			}
			t.Logf("runs taken over: %v", count)
		})
	}
}

// failedWrite is a write that a flaky store failed.
type failedWrite struct{ op, runID string }

// flaky is a store whose writes fail while it is down, as through a database
// restart or a cut connection; it reports each write it failed on failed, when
// there is room.
type flaky struct {
	store.Store
	failed chan failedWrite

	mu   sync.Mutex // guards down
	down error
}

func (f *flaky) setDown(err error) {
	f.mu.Lock()
	f.down = err
	f.mu.Unlock()
}

func (f *flaky) fail(op, runID string) error {
	f.mu.Lock()
	err := f.down
	f.mu.Unlock()
	if err != nil {
		select {
		case f.failed <- failedWrite{op, runID}:
		default:
		}
	}
	return err
}

func (f *flaky) CreateRun(ctx context.Context, r *store.Run) error {
	if err := f.fail("CreateRun", r.ID); err != nil {
		return err
	}
	return f.Store.CreateRun(ctx, r)
}

func (f *flaky) UpdateRun(ctx context.Context, r *store.Run) error {
	if err := f.fail("UpdateRun", r.ID); err != nil {
		return err
	}
	return f.Store.UpdateRun(ctx, r)
}

func (f *flaky) AppendEvents(ctx context.Context, evs []store.Event) error {
	if err := f.fail("AppendEvents", ""); err != nil {
		return err
	}
	return f.Store.AppendEvents(ctx, evs)
}

func (f *flaky) RenewLeases(ctx context.Context, replica string, ids []string, until time.Time) ([]string, error) {
	if err := f.fail("RenewLeases", ""); err != nil {
		return nil, err
	}
	return f.Store.RenewLeases(ctx, replica, ids, until)
}

func (f *flaky) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	if err := f.fail("Claim", ""); err != nil {
		return nil, err
	}
	return f.Store.Claim(ctx, replica, now, until, limit)
}

// TestRecorderRidesOutAnOutage: while the store's writes fail (a database restarts, a
// connection is cut), the runs go on, their events wait in memory, and their
// checkpoints and ends wait for the store; once it is back, every event is stored,
// in order, and each run's end. A run cancelled meanwhile ends CANCELLED, not ERROR.
func TestRecorderRidesOutAnOutage(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			st := &flaky{Store: open(t), failed: make(chan failedWrite, 1024)}
			// The outage lasts until a renewal failed (a third of the lease at most)
			// and the runs' leases outlast it and the backoff after it.
			rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me", FlushInterval: time.Millisecond, Lease: 2 * time.Second})
			defer rec.Close()
			ready, outage, checkpointed := make(chan error, 2), make(chan struct{}), make(chan error, 1)
			steps := []run.StepResult{{StepName: "research", Content: "facts", Status: run.StatusCompleted}}
			// a streams and checkpoints through the outage.
			a, err := goRun(ctx, rec, run.NewID(), nil, func(x engine.Run) error {
				emit(x, "before", run.EventWorkflowStarted, run.EventStepStarted)
				if err := rec.Checkpoint(ctx, x.X, nil); err != nil {
					ready <- err
					return err
				}
				ready <- nil
				<-outage
				emit(x, "during", run.EventRunContent, run.EventRunContent, run.EventStepCompleted)
				err := rec.Checkpoint(ctx, x.X, steps)
				checkpointed <- err
				emit(x, "after", run.EventStepStarted, run.EventRunContent)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// b is cancelled during the outage.
			b, err := goRun(ctx, rec, run.NewID(), nil, func(x engine.Run) error {
				emit(x, "", run.EventWorkflowStarted)
				err := rec.Checkpoint(ctx, x.X, nil)
				ready <- err
				if err != nil {
					return err
				}
				<-x.Entry.Ctx.Done()
				return context.Cause(x.Entry.Ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := <-ready; err != nil {
					t.Fatalf("Checkpoint before the outage: %v", err)
				}
			}

			st.setDown(errors.New("unexpected EOF"))
			close(outage)
			engine.EntryOf(b).Cancel(run.ReasonRequested)
			// c begins during the outage: it starts once its record is stored.
			type started struct {
				x   *run.Exec
				err error
			}
			cStarted := make(chan started, 1)
			go func() {
				x, err := goRun(ctx, rec, run.NewID(), nil, func(x engine.Run) error {
					emit(x, "c", run.EventWorkflowStarted, run.EventRunContent)
					return nil
				})
				cStarted <- started{x, err}
			}()
			failed := map[string]int{}
			deadline := time.After(time.Minute)
			ended := func(x *run.Exec) {
				t.Fatalf("run %s ended (%s %q, persist error %v) while the store was down", x.ID, x.Output().Status, x.Output().Error, x.PersistErr())
			}
			for failed["AppendEvents"] < 3 || failed["CreateRun"] == 0 || failed["RenewLeases"] == 0 {
				select {
				case w := <-st.failed:
					failed[w.op]++
				case <-a.Done():
					ended(a)
				case <-b.Done():
					ended(b)
				case c := <-cStarted:
					t.Fatalf("run c started during the outage: %v", c.err)
				case <-deadline:
					t.Fatalf("writes failed: %v", failed)
				}
			}
			for _, x := range []*run.Exec{a, b} {
				select {
				case <-x.Done():
					ended(x)
				default:
				}
			}
			select {
			case err := <-checkpointed:
				t.Fatalf("Checkpoint returned %v while the store was down", err)
			default:
			}
			if err := context.Cause(engine.EntryOf(a).Ctx); err != nil {
				t.Fatalf("run a stopped during the outage: %v", err)
			}

			st.setDown(nil)
			if err := <-checkpointed; err != nil {
				t.Fatalf("Checkpoint after the outage: %v", err)
			}
			cs := <-cStarted
			if cs.err != nil {
				t.Fatalf("run c did not start after the outage: %v", cs.err)
			}
			c := cs.x
			for _, tc := range []struct {
				x    *run.Exec
				want run.Status
				last run.EventType
			}{{a, run.StatusCompleted, run.EventWorkflowCompleted}, {b, run.StatusCancelled, run.EventWorkflowCancelled},
				{c, run.StatusCompleted, run.EventWorkflowCompleted}} {
				if out := tc.x.Wait(); out.Status != tc.want || tc.x.PersistErr() != nil {
					t.Errorf("run %s ended %s %q, persist error %v; want %s", tc.x.ID, out.Status, out.Error, tc.x.PersistErr(), tc.want)
					continue
				}
				if got, err := st.GetRun(ctx, tc.x.ID); err != nil || got.Status != tc.want {
					t.Errorf("run %s stored as %+v, %v", tc.x.ID, got, err)
				}
				if evs := checkEvents(t, st, tc.x.ID, nil, tc.last); len(evs) != tc.x.Log.Len() {
					t.Errorf("run %s: %d events stored of %d", tc.x.ID, len(evs), tc.x.Log.Len())
				}
			}
			t.Logf("writes failed during the outage: %v", failed)
		})
	}
}

// endWatch is a store that notes, as a run's record is written ERROR, the last
// event then stored for it: what a reader who sees the status finds.
type endWatch struct {
	store.Store

	mu   sync.Mutex // guards last
	last map[string]store.Event
}

func (e *endWatch) UpdateRun(ctx context.Context, r *store.Run) error {
	if r.Status == run.StatusError {
		evs, err := e.Store.Events(ctx, r.ID, 0, 0)
		if err != nil {
			return err
		}
		e.mu.Lock()
		if e.last == nil {
			e.last = map[string]store.Event{}
		}
		if len(evs) > 0 {
			e.last[r.ID] = evs[len(evs)-1]
		}
		e.mu.Unlock()
	}
	return e.Store.UpdateRun(ctx, r)
}

// lastBeforeEnd returns the last event of run id stored when its record was written
// ERROR.
func (e *endWatch) lastBeforeEnd(id string) store.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last[id]
}

// checkInterrupted checks that the run rn, left behind with n events stored, has
// been ended ERROR "interrupted" with its terminal event after them, built as the
// runtime builds it.
func checkInterrupted(t *testing.T, st store.Store, rn *store.Run, n int) {
	t.Helper()
	got, err := st.GetRun(t.Context(), rn.ID)
	if err != nil || got.Status != run.StatusError || got.Output.Error != store.ReasonInterrupted {
		t.Errorf("run %s stored as %+v, %v", rn.ID, got, err)
	}
	evs, err := st.Events(t.Context(), rn.ID, 0, 0)
	if err != nil || len(evs) != n+1 {
		t.Fatalf("run %s: %d events stored, want %d (%v)", rn.ID, len(evs), n+1, err)
	}
	last := evs[n]
	var ev run.Event
	if err := json.Unmarshal(last.Data, &ev); err != nil {
		t.Fatalf("terminal event %s: %v", last.Data, err)
	}
	want := run.EventWorkflowError
	if rn.Kind == run.KindAgent {
		want = run.EventRunError
	}
	if last.Index != n || last.Type != want || ev.Event != want || ev.RunID != rn.ID || ev.EventIndex != n ||
		ev.Error != store.ReasonInterrupted || ev.Content != store.ReasonInterrupted || ev.Origin == nil ||
		ev.SessionID != rn.SessionID || time.Since(time.Unix(ev.CreatedAt, 0)) > time.Minute {
		t.Errorf("terminal event of run %s: index %d, %s %s", rn.ID, last.Index, last.Type, last.Data)
	}
	if ev.Origin == nil {
		return
	}
	if rn.Kind == run.KindAgent && (ev.AgentID != rn.ComponentID || ev.AgentName != rn.Output.AgentName || ev.WorkflowID != "") ||
		rn.Kind == run.KindWorkflow && (ev.WorkflowID != rn.ComponentID || ev.WorkflowName != rn.Output.WorkflowName || ev.AgentID != "") {
		t.Errorf("terminal event of run %s comes from the wrong component: %s", rn.ID, last.Data)
	}
}

// TestRecoveryRace: two processes recovering at once, without Takeover, end each run
// left behind once, with one terminal event.
func TestRecoveryRace(t *testing.T) {
	const runs = 20
	for name, open := range sharedBackends() {
		t.Run(name, func(t *testing.T) {
			st1, st2 := open(t)
			dead := map[string]*store.Run{}
			for range runs {
				r := storedRun(run.StatusRunning, "dead", time.Now().Add(-time.Second))
				if err := st1.CreateRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				seedEvents(t, st1, r.ID, 2)
				dead[r.ID] = r
			}
			type recovered struct {
				by   string
				runs []*store.Run
			}
			all := make(chan recovered, 2*runs)
			var recs []*store.Recorder
			for replica, st := range map[string]store.Store{"A": st1, "B": st2} {
				recs = append(recs, store.NewRecorder(st, store.RecorderOptions{Replica: replica, Lease: 10 * time.Second,
					RecoverInterval: 5 * time.Millisecond,
					OnRecover: func(rs []*store.Run, err error) {
						if err != nil {
							t.Error(err)
						}
						all <- recovered{replica, rs}
					}}))
			}
			by := map[string][]string{}
			deadline := time.After(time.Minute)
			for len(by) < runs {
				select {
				case r := <-all:
					for _, rn := range r.runs {
						by[rn.ID] = append(by[rn.ID], r.by)
					}
				case <-deadline:
					t.Fatalf("%d runs recovered, want %d", len(by), runs)
				}
			}
			for _, rec := range recs {
				rec.Close()
			}
			close(all)
			for r := range all {
				for _, rn := range r.runs {
					by[rn.ID] = append(by[rn.ID], r.by)
				}
			}
			for id, replicas := range by {
				if len(replicas) != 1 {
					t.Errorf("run %s ended by %v", id, replicas)
				}
				checkInterrupted(t, st1, dead[id], 2)
			}
		})
	}
}

// caught is a store that counts the writes that failed.
type caught struct {
	store.Store
	failed atomic.Int64
}

func (c *caught) note(err error) error {
	if err != nil {
		c.failed.Add(1)
	}
	return err
}

func (c *caught) CreateRun(ctx context.Context, r *store.Run) error {
	return c.note(c.Store.CreateRun(ctx, r))
}

func (c *caught) UpdateRun(ctx context.Context, r *store.Run) error {
	return c.note(c.Store.UpdateRun(ctx, r))
}

func (c *caught) AppendEvents(ctx context.Context, evs []store.Event) error {
	return c.note(c.Store.AppendEvents(ctx, evs))
}

func (c *caught) RenewLeases(ctx context.Context, replica string, ids []string, until time.Time) ([]string, error) {
	lost, err := c.Store.RenewLeases(ctx, replica, ids, until)
	return lost, c.note(err)
}

// TestRecorderSurvivesTerminatedBackends: PostgreSQL terminates the store's
// connections (pg_terminate_backend, as a failover or an administrator does) while a
// run streams: the writes caught fail, the recorder writes them again on new
// connections, and the run completes with every event stored.
func TestRecorderSurvivesTerminatedBackends(t *testing.T) {
	ctx := t.Context()
	schema := pgtest.Schema(t)
	app := "kern_rec_" + schema
	s, err := postgres.Open(ctx, pgtest.WithParam(pgtest.URL(), "application_name", app), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := pgtest.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	kill := func() int {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	st := &caught{Store: s}
	rec := store.NewRecorder(st, store.RecorderOptions{Replica: "me", FlushInterval: time.Millisecond, Lease: 5 * time.Second})
	defer rec.Close()
	rounds, checkpointed := make(chan struct{}), make(chan error)
	x, err := goRun(ctx, rec, run.NewID(), nil, func(x engine.Run) error {
		emit(x, "", run.EventWorkflowStarted)
		for range rounds {
			emit(x, "more", run.EventRunContent, run.EventRunContent)
			err := rec.Checkpoint(ctx, x.X, nil)
			checkpointed <- err
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for i := 0; i < 20 && st.failed.Load() == 0; i++ {
		killed += kill()
		rounds <- struct{}{}
		if err := <-checkpointed; err != nil {
			t.Fatalf("Checkpoint after terminated backends: %v", err)
		}
	}
	close(rounds)
	if out := x.Wait(); out.Status != run.StatusCompleted || x.PersistErr() != nil {
		t.Fatalf("run ended %s %q, persist error %v", out.Status, out.Error, x.PersistErr())
	}
	if evs := checkEvents(t, st, x.ID, nil, run.EventWorkflowCompleted); len(evs) != x.Log.Len() {
		t.Errorf("%d events stored of %d", len(evs), x.Log.Len())
	}
	if st.failed.Load() == 0 {
		t.Errorf("no write failed after %d backends were terminated: the test tested nothing", killed)
	}
	t.Logf("%d backends terminated, %d writes failed and were written again", killed, st.failed.Load())
}

// recoverEvery runs rv's rounds now and then every interval until stop is called,
// which waits for the round under way; onRecover, if set, hears what each round
// ended, as RecorderOptions.OnRecover does.
func recoverEvery(rv *store.Recovery, every time.Duration, onRecover func([]*store.Run, error)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			runs, err := rv.Once(ctx)
			if onRecover != nil && ctx.Err() == nil && (len(runs) > 0 || err != nil) {
				onRecover(runs, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
