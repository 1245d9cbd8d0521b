package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slowWorkflow streams a first chunk, then waits an hour for the next.
func slowWorkflow(name string) *workflow.Workflow {
	writer := &agent.Agent{Name: name + " writer", Model: &scripted.Model{
		Turns: []scripted.Turn{{Text: "Once upon a time there was a dragon"}},
		Delay: time.Hour,
	}}
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{workflow.AgentStep("write", writer, "write")}}
}

// gatedWorkflow waits for gate (or its cancel).
func gatedWorkflow(name string, gate <-chan struct{}) *workflow.Workflow {
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.FuncStep("gate", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			select {
			case <-gate:
				return workflow.StepOutput{Content: "opened"}, nil
			case <-ctx.Done():
				return workflow.StepOutput{}, context.Cause(ctx)
			}
		}),
	}}
}

func quickWorkflow(name string) *workflow.Workflow {
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.AgentStep("say", &agent.Agent{Name: name + " agent", Model: scripted.New("hello world")}, ""),
	}}
}

// startHost returns a host on st for opts, shut down (at once) when the test ends.
func startHost(t *testing.T, st store.Store, opts Options) *Host {
	t.Helper()
	h, err := New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}

// untilContent starts a run of the workflow and waits for its first content.
func untilContent(t *testing.T, h *Host, wf string) *Run {
	t.Helper()
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: wf, Input: "go", SessionID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.Exec().Log.Follow(ctx, 0, func(ev *run.Event) bool { return ev.Event != run.EventRunContent })
	return r
}

func TestCancel(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	h := startHost(t, nil, Options{Workers: 1, QueueSize: 1,
		Workflows: []*workflow.Workflow{slowWorkflow("Story"), quickWorkflow("Quick"), gatedWorkflow("Gated", gate)}})
	ctx := context.Background()

	t.Run("live", func(t *testing.T) {
		r := untilContent(t, h, "story")
		st, known, err := h.Cancel(ctx, r.ID(), "", true)
		out := r.Exec().Output()
		if err != nil || !known || st != run.StatusCancelled || out.Content == "" || out.Reason != run.ReasonRequested {
			t.Fatalf("cancel of a live run: %s known %v err %v; output %s %q %q", st, known, err, out.Status, out.Content, out.Reason)
		}
	})
	t.Run("queued", func(t *testing.T) {
		busy, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "gated", Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		queued, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "quick", Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "quick", Input: "go"}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("third background run with 1 worker and a queue of 1: %v, want ErrQueueFull", err)
		}
		st, known, err := h.Cancel(ctx, queued.RunID, "", true)
		if err != nil || !known || st != run.StatusCancelled {
			t.Fatalf("cancel of a queued run: %s known %v err %v", st, known, err)
		}
		r := h.Lookup(busy.RunID)
		if r == nil {
			t.Fatal("the running background run is not held")
		}
		<-r.Started()
		if r.Exec() == nil || r.Exec().Ended() {
			t.Fatal("the running background run is no longer running")
		}
		st, _, _ = h.Cancel(ctx, busy.RunID, "", true)
		if st != run.StatusCancelled {
			t.Fatalf("cancel of the running background run: %s", st)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		id := run.NewID()
		st, known, err := h.Cancel(ctx, id, "", true)
		if err != nil || known || st != run.StatusPending {
			t.Fatalf("cancel of an unknown run: %s known %v err %v, want PENDING unknown", st, known, err)
		}
		r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "story", RunID: id, Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		if out := r.Exec().Wait(); out.Status != run.StatusCancelled {
			t.Fatalf("a run started after its cancel ended %s, want CANCELLED (the intent kept)", out.Status)
		}
	})
	t.Run("ended", func(t *testing.T) {
		r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "quick", Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		r.Exec().Wait()
		st, known, err := h.Cancel(ctx, r.ID(), "", true)
		if err != nil || !known || st != run.StatusCompleted {
			t.Fatalf("cancel of an ended run: %s known %v err %v, want COMPLETED", st, known, err)
		}
	})
	t.Run("nowait", func(t *testing.T) {
		r := untilContent(t, h, "story")
		st, known, err := h.Cancel(ctx, r.ID(), "", false)
		if err != nil || !known || (st != run.StatusRunning && st != run.StatusCancelled) {
			t.Fatalf("cancel without wait: %s known %v err %v, want RUNNING (or CANCELLED, its end stored already)", st, known, err)
		}
		out, err := r.Wait(ctx)
		if err != nil || out.Status != run.StatusCancelled {
			t.Fatalf("wait for the run: %s %v", out.Status, err)
		}
	})
	t.Run("wait", func(t *testing.T) {
		r := untilContent(t, h, "story")
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		if st, err := h.Wait(short, r.ID()); !errors.Is(err, context.DeadlineExceeded) || st != run.StatusRunning {
			t.Fatalf("Wait of a running run past its ctx: %s %v, want RUNNING and the ctx's error", st, err)
		}
		cancelled := make(chan error, 1)
		go func() { _, _, err := h.Cancel(ctx, r.ID(), "", false); cancelled <- err }()
		if st, err := h.Wait(ctx, r.ID()); err != nil || st != run.StatusCancelled {
			t.Fatalf("Wait: %s %v, want CANCELLED", st, err)
		}
		if err := <-cancelled; err != nil {
			t.Fatal(err)
		}
		if _, err := h.Wait(ctx, "no-such-run"); !errors.Is(err, ErrUnknownRun) {
			t.Fatalf("Wait of an unknown run without a store: %v, want ErrUnknownRun", err)
		}
	})
	t.Run("library", func(t *testing.T) {
		r := untilContent(t, h, "story")
		st, err := h.Workflows()[0].CancelRun(ctx, r.ID())
		if err != nil || st != run.StatusCancelled {
			t.Fatalf("wf.CancelRun: %s %v", st, err)
		}
	})
}

// TestShutdown: runs are cancelled first, their end persisted, the host's recorder
// closed; the store is still open for its owner to close.
func TestShutdown(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := New(st, Options{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, NoRecovery: true})
	if err != nil {
		t.Fatal(err)
	}
	r := untilContent(t, h, "story")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.Exec().Ended() {
		t.Fatal("Shutdown returned before the run ended")
	}
	rec, err := st.GetRun(context.Background(), r.ID())
	if err != nil || rec.Status != run.StatusCancelled || rec.Output.Reason != ReasonShutdown || rec.Output.Content == "" {
		t.Fatalf("run stored after Shutdown: %+v, %v; want CANCELLED %q with its content", rec, err, ReasonShutdown)
	}
	if _, err := h.Start(Request{Kind: run.KindWorkflow, Component: "story"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestNewRefusesDuplicates(t *testing.T) {
	_, err := New(nil, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick"), quickWorkflow("Quick")}})
	if err == nil {
		t.Fatal("two workflows with one id accepted")
	}
}

// openPostgres opens a store on schema, closed when the test ends (after the hosts
// on it, whose cleanups were registered later).
func openPostgres(t *testing.T, url, schema string) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCancelElsewhere: a run executing in one process is cancelled through a host
// in another on the same database — by Host.Cancel, and by the library's
// wf.CancelRun — and ends CANCELLED with its partial content; the cancel of a run
// executing here is stored as an intent before Cancel returns.
func TestCancelElsewhere(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	stA, stB := openPostgres(t, url, schema), openPostgres(t, url, schema)
	a := startHost(t, stA, Options{Replica: "A", Workflows: []*workflow.Workflow{slowWorkflow("Story")}})
	wfB := slowWorkflow("Story")
	b := startHost(t, stB, Options{Replica: "B", Workflows: []*workflow.Workflow{wfB}})
	ctx := context.Background()

	for name, cancel := range map[string]func(id string) (run.Status, error){
		"host": func(id string) (run.Status, error) {
			st, known, err := b.Cancel(ctx, id, "", true)
			if !known {
				err = errors.Join(err, fmt.Errorf("run %s unknown to B", id))
			}
			return st, err
		},
		"library": func(id string) (run.Status, error) { return wfB.CancelRun(ctx, id) },
	} {
		t.Run(name, func(t *testing.T) {
			r := untilContent(t, a, "story")
			waitStored(t, stB, r.ID())
			st, err := cancel(r.ID())
			if err != nil || st != run.StatusCancelled {
				t.Fatalf("cancel through B of a run on A: %s %v, want CANCELLED", st, err)
			}
			out := r.Exec().Wait()
			if out.Status != run.StatusCancelled || out.Content == "" {
				t.Fatalf("run on A ended %s %q, want CANCELLED with its partial content", out.Status, out.Content)
			}
		})
	}
	t.Run("wait", func(t *testing.T) {
		r := untilContent(t, a, "story")
		waitStored(t, stB, r.ID())
		waited := make(chan run.Status, 1)
		go func() {
			st, err := b.Wait(ctx, r.ID())
			if err != nil {
				t.Error(err)
			}
			waited <- st
		}()
		// Without wait: RUNNING, or CANCELLED when the run's end was stored first.
		if st, _, err := a.Cancel(ctx, r.ID(), "", false); err != nil || (st != run.StatusRunning && st != run.StatusCancelled) {
			t.Fatalf("cancel on A: %s %v", st, err)
		}
		if st := <-waited; st != run.StatusCancelled {
			t.Fatalf("B waited for the run on A until %s, want CANCELLED", st)
		}
	})
	t.Run("durable", func(t *testing.T) {
		r := untilContent(t, a, "story")
		if st, _, err := a.Cancel(ctx, r.ID(), "", false); err != nil || (st != run.StatusRunning && st != run.StatusCancelled) {
			t.Fatalf("local cancel: %s %v", st, err)
		}
		reason, ok, err := stA.(store.Canceller).PendingCancel(ctx, r.ID())
		if err == nil && !ok {
			// The run's end, stored first, is done with its intent: it is durable as
			// the run's status instead.
			if rec, gerr := stA.GetRun(ctx, r.ID()); gerr == nil && rec.Status == run.StatusCancelled {
				ok, reason = true, run.ReasonRequested
			}
		}
		if err != nil || !ok || reason != run.ReasonRequested {
			t.Fatalf("intent of a local cancel: %q %v %v, want it stored before Cancel returned", reason, ok, err)
		}
		r.Exec().Wait()
	})
	t.Run("unknown", func(t *testing.T) {
		st, known, err := b.Cancel(ctx, "no-such-run", "", true)
		if err != nil || known || st != run.StatusPending {
			t.Fatalf("cancel of an unknown run: %s known %v err %v", st, known, err)
		}
	})
}

// waitStored waits until run id's record is stored.
func waitStored(t *testing.T, st store.Store, id string) {
	t.Helper()
	eventually.Succeeds(t, 10*time.Second, func() error {
		_, err := st.GetRun(context.Background(), id)
		return err
	})
}

// TestCancelBetweenRegisterAndStart: a cancel notified by another process
// (remoteCancel, on the listener's goroutine) that arrives after runJob or
// takeover registered a run and before startNow claimed it: remoteCancel sees a
// registered run with no exec and dequeues it, which claims and begins it; startNow
// must not begin the run a second time.
func TestCancelBetweenRegisterAndStart(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	a := startHost(t, openPostgres(t, url, schema), Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	c := a.component(run.KindWorkflow, "quick")
	lr := newRun(c, Request{RunID: run.NewID(), Input: "go", SessionID: "s"}, true)
	if err := a.register(lr, false); err != nil {
		t.Fatal(err)
	}
	// The listener's goroutine, between register and startNow (no lock orders them).
	a.remoteCancel(lr.id, run.ReasonRequested)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		err = a.startNow(lr)
	}()
	if err != nil {
		t.Fatalf("startNow after a remote cancel dequeued the registered run: %v", err)
	}
	if out := lr.Exec().Wait(); out.Status != run.StatusCancelled {
		t.Fatalf("run ended %s, want CANCELLED", out.Status)
	}
}

// TestTakeover: a host takes over the run a process that died left behind (its
// lease lapsed), resumes it after its finished step, and it completes here.
// The recovery loop's rounds are signalled, not slept through.
func TestTakeover(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	st := openPostgres(t, url, schema)
	ctx := context.Background()
	wf := &workflow.Workflow{Name: "Durable", Steps: []workflow.Step{
		workflow.FuncStep("one", func(context.Context, *workflow.Input) (workflow.StepOutput, error) {
			t.Error("step one ran again")
			return workflow.StepOutput{Content: "again."}, nil
		}),
		workflow.FuncStep("two", func(_ context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: in.Previous + "two."}, nil
		}),
	}}
	one := run.StepResult{StepID: "one", StepName: "one", Content: "one.", Status: run.StatusCompleted}
	id, past := run.NewID(), time.Now().Add(-time.Minute)
	left := &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: "durable", Status: run.StatusRunning,
		Input: "go", Output: run.Output{RunID: id, WorkflowID: "durable", StepResults: []run.StepResult{one}},
		Replica: "dead", LeaseUntil: past, CreatedAt: past, UpdatedAt: past}
	if err := st.CreateRun(ctx, left); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	for i, typ := range []run.EventType{run.EventWorkflowStarted, run.EventStepStarted, run.EventStepCompleted} {
		evs = append(evs, store.Event{RunID: id, Index: i, Type: typ, CreatedAt: past,
			Data: []byte(fmt.Sprintf(`{"event":%q,"run_id":%q,"created_at":%d}`, typ, id, past.Unix()))})
	}
	if err := st.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}

	// No tick: the first round, at start, is the only one.
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{wf}}, sig)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(ctx)
	<-sig.recovered
	r := h.Lookup(id)
	if r == nil {
		t.Fatal("the run left behind was not taken over in the first recovery round")
	}
	if out, err := r.Wait(ctx); err != nil || out.Status != run.StatusCompleted {
		t.Fatalf("taken-over run ended %s, %v", out.Status, err)
	}
	rec, err := st.GetRun(ctx, id)
	if err != nil || rec.Status != run.StatusCompleted || rec.Output.Content != "one.two." || rec.Replica != "B" {
		t.Fatalf("taken-over run: %+v, %v; want COMPLETED \"one.two.\" on B", rec, err)
	}
}

// failingIntents is a store that cannot keep cancel intents (its database is
// unreachable for that write).
type failingIntents struct{ *sqlite.Store }

var errUnreachable = errors.New("database unreachable")

func (failingIntents) CancelRun(context.Context, string, string) error { return errUnreachable }

// failingEnd is a recorder that cannot persist the end of runs.
type failingEnd struct{ *store.Recorder }

func (r failingEnd) End(ctx context.Context, x *run.Exec) error {
	_ = r.Recorder.End(ctx, x)
	return errUnreachable
}

// TestCancelStoreDown: a cancel of a run executing here takes effect even when the
// store cannot keep its intent; it says so (ErrNotDurable) unless the run's end was
// persisted, which makes the cancel durable all the same.
func TestCancelStoreDown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		endFail bool // the run's end is not persisted either
		wait    bool
		library bool // wf.CancelRun rather than Host.Cancel
		want    run.Status
		durable bool
	}{
		{name: "intent and end not stored", endFail: true, wait: true, want: run.StatusCancelled},
		{name: "intent and end not stored, library", endFail: true, wait: true, library: true, want: run.StatusCancelled},
		{name: "intent not stored, no wait", want: run.StatusRunning},
		{name: "end stored", wait: true, want: run.StatusCancelled, durable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sq := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
			wf := slowWorkflow("Story")
			opts := Options{Workflows: []*workflow.Workflow{wf}, NoRecovery: true}
			if tc.endFail {
				rec := store.NewRecorder(sq, store.RecorderOptions{NoRecovery: true})
				t.Cleanup(func() { rec.Close() }) // after the host's Shutdown
				opts.Recorder = failingEnd{rec}
			}
			h := startHost(t, failingIntents{sq}, opts)
			r := untilContent(t, h, "story")
			var st run.Status
			known, err := true, error(nil)
			if tc.library {
				st, err = wf.CancelRun(context.Background(), r.ID())
			} else {
				st, known, err = h.Cancel(context.Background(), r.ID(), "", tc.wait)
			}
			if !tc.wait && err == nil && known {
				// The run's end was stored before the cancel looked for it: durable
				// after all, answered with the stored status (checked below).
				tc.durable, tc.want = true, run.StatusCancelled
			}
			if tc.durable {
				if st != tc.want || !known || err != nil {
					t.Fatalf("cancel with the intent not stored but the run's end stored: %s known %v err %v; want %s, known, no error", st, known, err, tc.want)
				}
			} else if st != tc.want || !known || !errors.Is(err, ErrNotDurable) || !errors.Is(err, errUnreachable) {
				t.Fatalf("cancel with the store down: %s known %v err %v; want %s, known, ErrNotDurable wrapping the store's error", st, known, err, tc.want)
			}
			if out := r.Exec().Wait(); out.Status != run.StatusCancelled {
				t.Fatalf("run ended %s, want CANCELLED here all the same", out.Status)
			}
		})
	}
}

// TestMemoryHostKeepsIntentsAsAStoreDoes: without a store, the host's own registry
// remembers a cancel for an unknown id as long as a store keeps an intent, which is
// what `kern cancel` tells a person ("the intent is kept for 24 h").
func TestMemoryHostKeepsIntentsAsAStoreDoes(t *testing.T) {
	h, err := New(nil, Options{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := h.Registry().Memory; got != store.IntentTTL {
		t.Errorf("registry memory %v, want store.IntentTTL (%v)", got, store.IntentTTL)
	}
	st, known, err := h.Cancel(t.Context(), "not-started-yet", "", false)
	if err != nil || known || st != run.StatusPending {
		t.Fatalf("cancel of an unknown id: %s known=%v %v, want PENDING, unknown", st, known, err)
	}
	r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "quick", Input: "go", RunID: "not-started-yet"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.Wait(t.Context()); err != nil || out.Status != run.StatusCancelled {
		t.Fatalf("run started after its cancel: %v %v, want CANCELLED", out, err)
	}
}
