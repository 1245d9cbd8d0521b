package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// streamUntil ranges over a's stream in a goroutine, calls act once an event of type
// t arrives, and returns every event once the stream ends.
func streamUntil(t *testing.T, ctx context.Context, a *agent.Agent, id string, at run.EventType, act func()) []*run.Event {
	t.Helper()
	var evs []*run.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		acted := false
		for ev, err := range a.Stream(ctx, "go", run.WithID(id)) {
			if err != nil {
				t.Errorf("stream: %v", err)
				return
			}
			evs = append(evs, ev)
			if ev.Event == at && !acted {
				acted = true
				go act()
			}
		}
	}()
	within(t, done, "stream")
	return evs
}

func TestCancelWhileModelStalls(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "slow", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}}
	id := run.NewID()
	statuses := make(chan run.Status, 1)
	evs := streamUntil(t, t.Context(), a, id, run.EventRunStarted, func() {
		st, err := a.CancelRun(context.Background(), id)
		if err != nil {
			t.Errorf("CancelRun: %v", err)
		}
		statuses <- st
	})
	last := evs[len(evs)-1]
	if last.Event != run.EventRunCancelled || last.Reason != run.ReasonRequested {
		t.Fatalf("last event = %s (%q), want RunCancelled", last.Event, last.Reason)
	}
	if st := <-statuses; st != run.StatusCancelled {
		t.Errorf("CancelRun returned %s, want CANCELLED", st)
	}
	if n := len(terminals(evs, id)); n != 1 {
		t.Errorf("%d terminal events, want 1", n)
	}
}

func TestCancelWhileToolRuns(t *testing.T) {
	t.Parallel()
	toolStarted := make(chan struct{})
	toolSaw := make(chan error, 1)
	slow := tool.Func("slow", "", func(ctx context.Context, a weatherArgs) (string, error) {
		close(toolStarted)
		<-ctx.Done()
		toolSaw <- ctx.Err()
		return "", ctx.Err()
	})
	m := &scripted.Model{Turns: []scripted.Turn{
		{Text: "calling ", ToolCalls: []model.ToolCall{{Name: "slow", Arguments: json.RawMessage(`{"city":"x"}`)}}},
		{Text: "never reached"},
	}}
	a := &agent.Agent{Name: "t", Model: m, Tools: []tool.Tool{slow}}
	id := run.NewID()
	evs := streamUntil(t, t.Context(), a, id, run.EventToolCallStarted, func() {
		<-toolStarted
		a.CancelRun(context.Background(), id)
	})
	if err := <-toolSaw; !errors.Is(err, context.Canceled) {
		t.Errorf("tool's context: %v, want cancelled", err)
	}
	last := evs[len(evs)-1]
	if last.Event != run.EventRunCancelled {
		t.Fatalf("last event = %s, want RunCancelled", last.Event)
	}
	for _, ev := range evs {
		if ev.Event == run.EventToolCallCompleted || ev.Event == run.EventToolCallError {
			t.Errorf("tool result event after the cancel: %+v", ev)
		}
	}
}

func TestCancelBeforeStart(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: scripted.New("hello")}
	id := run.NewID()
	st, err := a.CancelRun(t.Context(), id)
	if err != nil || st != run.StatusPending {
		t.Fatalf("CancelRun before start = %s, %v; want PENDING (intent kept)", st, err)
	}
	out, err := a.Run(t.Context(), "x", run.WithID(id))
	if !errors.Is(err, run.ErrCancelled) || out.Status != run.StatusCancelled || out.Content != "" {
		t.Fatalf("Run = %+v, %v; want CANCELLED at once", out, err)
	}
	// The intent was used up: the same id can run again to completion? It is ended,
	// so a cancel reports the terminal status.
	if st, _ := a.CancelRun(t.Context(), id); st != run.StatusCancelled {
		t.Errorf("CancelRun after the end = %s, want CANCELLED", st)
	}
}

func TestCancelAfterCompletionAndTwice(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: scripted.New("hello")}
	id := run.NewID()
	out, err := a.Run(t.Context(), "x", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		st, err := a.CancelRun(t.Context(), id)
		if err != nil || st != run.StatusCompleted {
			t.Errorf("CancelRun after completion = %s, %v; want COMPLETED", st, err)
		}
	}
	if out.Status != run.StatusCompleted {
		t.Errorf("output status changed to %s", out.Status)
	}

	// Twice while running: both calls report CANCELLED, one terminal event.
	b := &agent.Agent{Name: "b", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "x"}}, Stall: time.Hour}}
	id2 := run.NewID()
	evs := streamUntil(t, t.Context(), b, id2, run.EventRunStarted, func() {
		for range 2 {
			if st, _ := b.CancelRun(context.Background(), id2); st != run.StatusCancelled {
				t.Errorf("CancelRun = %s", st)
			}
		}
	})
	if n := len(terminals(evs, id2)); n != 1 {
		t.Errorf("%d terminal events, want 1", n)
	}
}

func TestCancelStopsTheStreamAtOnce(t *testing.T) {
	t.Parallel()
	// The model streams one word, then waits an hour before the next.
	a := &agent.Agent{Name: "a", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "alpha beta gamma"}}, Delay: time.Hour}}
	id := run.NewID()
	evs := streamUntil(t, t.Context(), a, id, run.EventRunContent, func() {
		a.CancelRun(context.Background(), id)
	})
	var content string
	for _, ev := range evs {
		if ev.Event == run.EventRunContent {
			content += ev.Content
		}
	}
	if content != "alpha " || evs[len(evs)-1].Event != run.EventRunCancelled {
		t.Fatalf("streamed %q then %s; want the first word, then RunCancelled", content, evs[len(evs)-1].Event)
	}
}

func TestContextCancelIsLikeCancelRun(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "alpha beta"}}, Delay: time.Hour}}
	ctx, cancel := context.WithCancel(t.Context())
	id := run.NewID()
	evs := streamUntil(t, ctx, a, id, run.EventRunContent, cancel)
	last := evs[len(evs)-1]
	if last.Event != run.EventRunCancelled || last.Reason != context.Canceled.Error() {
		t.Fatalf("last = %s (%q), want RunCancelled with the context's reason", last.Event, last.Reason)
	}
	if st, _ := a.CancelRun(t.Context(), id); st != run.StatusCancelled {
		t.Errorf("status = %s", st)
	}
}

func TestRunOutputOfCancelledRun(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "alpha beta"}}, Delay: time.Hour}}
	id := run.NewID()
	x, err := a.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	// Cancel once the first word is out.
	x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool { return ev.Event != run.EventRunContent })
	if st, err := a.CancelRun(t.Context(), id); st != run.StatusCancelled || err != nil {
		t.Fatalf("CancelRun = %s, %v", st, err)
	}
	out := x.Wait()
	if out.Status != run.StatusCancelled || out.Content != "alpha " || out.Reason != run.ReasonRequested {
		t.Fatalf("output = %+v", out)
	}
	if !errors.Is(out.Err(), run.ErrCancelled) {
		t.Errorf("Err() = %v", out.Err())
	}
}

func TestBreakingOutCancelsTheRun(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "alpha beta"}}, Delay: time.Hour}}
	id := run.NewID()
	for ev := range a.Stream(t.Context(), "go", run.WithID(id)) {
		if ev.Event == run.EventRunContent {
			break
		}
	}
	// Stream returned, so the run has ended (goleak checks its goroutine is gone).
	if st, _ := a.CancelRun(t.Context(), id); st != run.StatusCancelled {
		t.Errorf("status after break = %s, want CANCELLED", st)
	}
}

// TestCompletionRacesCancel races a cancel against a run's completion many times:
// whichever wins, the run has exactly one terminal event and one status, and every
// view of that status agrees.
func TestCompletionRacesCancel(t *testing.T) {
	t.Parallel()
	n := 3000
	if testing.Short() {
		n = 300
	}
	a := &agent.Agent{Name: "race", Model: scripted.New("a b c")}
	counts := map[run.Status]int{}
	for range n {
		id := run.NewID()
		x, err := a.Start(t.Context(), "go", run.WithID(id))
		if err != nil {
			t.Fatal(err)
		}
		cancelled := make(chan run.Status, 1)
		go func() {
			st, _ := a.CancelRun(context.Background(), id)
			cancelled <- st
		}()
		out := x.Wait()
		evs := x.Log.Events()
		term := terminals(evs, id)
		if len(term) != 1 {
			t.Fatalf("%d terminal events: %v", len(term), types(evs))
		}
		if term[0] != evs[len(evs)-1] {
			t.Fatalf("terminal event is not the last one: %v", types(evs))
		}
		st := <-cancelled
		want := map[run.Status]run.EventType{run.StatusCompleted: run.EventRunCompleted, run.StatusCancelled: run.EventRunCancelled}
		if want[out.Status] != term[0].Event {
			t.Fatalf("status %s but terminal event %s", out.Status, term[0].Event)
		}
		// CancelRun may have come first (PENDING, then the run is cancelled at start)
		// or during the run, or after it; it never contradicts the outcome.
		if st != out.Status && st != run.StatusPending {
			t.Fatalf("CancelRun said %s, the run ended %s", st, out.Status)
		}
		if st == run.StatusPending && out.Status != run.StatusCancelled {
			t.Fatalf("cancel intent kept but the run ended %s", out.Status)
		}
		counts[out.Status]++
	}
	t.Logf("outcomes over %d races: %v", n, counts)
}
