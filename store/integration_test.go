package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kern/agent"
	"kern/model"
	"kern/model/scripted"
	"kern/run"
	"kern/store"
	"kern/store/postgres"
	"kern/store/sqlite"
	"kern/workflow"
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

func postgresURL() string {
	if u := os.Getenv("KERN_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func openPostgres(t testing.TB) store.Store {
	ctx := context.Background()
	schema := fmt.Sprintf("kern_it_%08x", rand.Uint32())
	s, err := postgres.Open(ctx, postgresURL(), postgres.WithSchema(schema))
	if err != nil {
		if os.Getenv("CI") == "" && strings.Contains(err.Error(), "connect") {
			t.Skipf("!!! PostgreSQL TESTS SKIPPED: no server at %s (%v); set KERN_TEST_POSTGRES_URL", postgresURL(), err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		conn, err := pgx.Connect(ctx, postgresURL())
		if err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			conn.Close(ctx)
		}
	})
	return s
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
					if err != nil || got.Status != run.StatusCompleted || len(evs) != 19 {
						t.Errorf("run %s: %v, %d events, %v", id, got, len(evs), err)
					}
				}
			})

			t.Run("recover runs left behind", func(t *testing.T) {
				st := open(t)
				now := time.Now()
				dead := &store.Run{ID: run.NewID(), Kind: store.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning,
					Replica: "dead", LeaseUntil: now.Add(-time.Minute), CreatedAt: now, UpdatedAt: now}
				live := &store.Run{ID: run.NewID(), Kind: store.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning,
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
	st.Close()
	out := x.Wait()
	if out.Status != run.StatusError || !strings.Contains(out.Error, "store") || !errors.Is(x.PersistErr(), store.ErrClosed) {
		t.Fatalf("output = %s %q, persist error %v; want ERROR naming the store", out.Status, out.Error, x.PersistErr())
	}
}

// TestRecorderRecoversRunsLeftBehind: a process with a recorder ends the runs a dead
// process left RUNNING, once their lease has lapsed, and never a live one.
func TestRecorderRecoversRunsLeftBehind(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			now := time.Now()
			dead := &store.Run{ID: run.NewID(), Kind: store.KindAgent, ComponentID: "a", Status: run.StatusRunning,
				Input: "hi", Output: run.Output{Content: "partial"}, Replica: "dead", LeaseUntil: now.Add(-time.Second), CreatedAt: now}
			live := &store.Run{ID: run.NewID(), Kind: store.KindAgent, ComponentID: "a", Status: run.StatusRunning,
				Replica: "other", LeaseUntil: now.Add(time.Hour), CreatedAt: now}
			for _, r := range []*store.Run{dead, live} {
				if err := st.CreateRun(t.Context(), r); err != nil {
					t.Fatal(err)
				}
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
			if len(runs) != 1 || runs[0].ID != dead.ID {
				t.Fatalf("recovered %v", runs)
			}
			d, _ := st.GetRun(t.Context(), dead.ID)
			l, _ := st.GetRun(t.Context(), live.ID)
			if d.Status != run.StatusError || d.Output.Error != store.ReasonInterrupted || d.Output.Content != "partial" ||
				l.Status != run.StatusRunning {
				t.Errorf("dead: %s %q %q; live: %s", d.Status, d.Output.Error, d.Output.Content, l.Status)
			}
		})
	}
}
