package run_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/kern-dev/kern/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := run.NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || seen[id] {
			t.Fatalf("bad or repeated id %q: %v", id, err)
		}
		if sec, _ := u.Time().UnixTime(); time.Since(time.Unix(sec, 0)) > time.Hour {
			t.Fatalf("id %q carries time %d", id, sec)
		}
		seen[id] = true
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Research Agent":           "research-agent",
		"  Article -- Workflow!  ": "article-workflow",
		"Étape 2":                  "étape-2",
		"":                         "",
	}
	for in, want := range tests {
		if got := run.Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventJSON(t *testing.T) {
	t.Parallel()
	zero := 0
	ev := &run.Event{Event: run.EventRunContent, RunID: "r", CreatedAt: 1700000000, EventIndex: 3,
		Origin: &run.Origin{WorkflowRunID: "w", StepName: "research", StepIndex: &zero}, Content: "hi"}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"RunContent","run_id":"r","created_at":1700000000,"event_index":3,"workflow_run_id":"w","step_name":"research","step_index":0,"content":"hi"}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	var back0 run.Event
	if err := json.Unmarshal(b, &back0); err != nil || back0.StepName != "research" || *back0.StepIndex != 0 || back0.Detail != nil {
		t.Errorf("round trip = %+v, %v", back0, err)
	}

	// Detail's fields sit at the top level too, and come back.
	yes := true
	ev = &run.Event{Event: run.EventConditionExecutionStarted, RunID: "r", Origin: &run.Origin{WorkflowID: "w"},
		Detail: &run.Detail{ConditionResult: &yes, StepResults: []run.StepResult{{StepName: "a", Content: "x"}}}}
	b, _ = json.Marshal(ev)
	want = `{"event":"ConditionExecutionStarted","run_id":"r","created_at":0,"event_index":0,"workflow_id":"w","condition_result":true,"step_results":[{"step_name":"a","content":"x"}]}`
	if string(b) != want {
		t.Errorf("JSON with detail:\n got %s\nwant %s", b, want)
	}
	var back1 run.Event
	if err := json.Unmarshal(b, &back1); err != nil || back1.Detail == nil || !*back1.Detail.ConditionResult || back1.WorkflowID != "w" {
		t.Errorf("round trip with detail = %+v, %v", back1, err)
	}

	m := run.Metrics{Duration: 1500 * time.Millisecond, TimeToFirstToken: 250 * time.Millisecond, InputTokens: 1, OutputTokens: 2, TotalTokens: 3}
	b, _ = json.Marshal(m)
	if string(b) != `{"input_tokens":1,"output_tokens":2,"total_tokens":3,"duration":1.5,"time_to_first_token":0.25}` {
		t.Errorf("metrics JSON = %s", b)
	}
	var back run.Metrics
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Errorf("metrics round trip = %+v, %v", back, err)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	for _, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
		if !st.Terminal() {
			t.Errorf("%s not terminal", st)
		}
	}
	for _, st := range []run.Status{run.StatusPending, run.StatusRunning, run.StatusPaused} {
		if st.Terminal() {
			t.Errorf("%s terminal", st)
		}
	}
	for k, want := range map[run.Kind][3]run.EventType{
		run.KindAgent:    {run.EventRunCompleted, run.EventRunCancelled, run.EventRunError},
		run.KindWorkflow: {run.EventWorkflowCompleted, run.EventWorkflowCancelled, run.EventWorkflowError},
	} {
		for i, st := range []run.Status{run.StatusCompleted, run.StatusCancelled, run.StatusError} {
			if got := k.TerminalEvent(st); got != want[i] || !got.Terminal() {
				t.Errorf("kind %d, %s: %s", k, st, got)
			}
		}
	}
}

func TestRegistryLifecycle(t *testing.T) {
	t.Parallel()
	var reg run.Registry // the zero value works

	// Before start: the intent is kept; the run starts cancelled.
	if st, err := reg.Cancel(t.Context(), "early", "too soon"); st != run.StatusPending || err != nil {
		t.Fatalf("Cancel before start = %s, %v", st, err)
	}
	e, err := reg.Begin(t.Context(), "early", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Ctx.Err() == nil {
		t.Fatal("a run with a kept cancel intent started with a live context")
	}
	if st, reason := e.Finish(nil); st != run.StatusCancelled || reason != "too soon" {
		t.Fatalf("Finish = %s, %q", st, reason)
	}
	e.Close()

	// While running: Cancel stops the context and waits for the end.
	stopped := make(chan struct{})
	e, err = reg.Begin(t.Context(), "live", func() { close(stopped) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Begin(t.Context(), "live", nil); !errors.Is(err, run.ErrDuplicateID) {
		t.Errorf("second Begin with the same id: %v", err)
	}
	go func() {
		<-e.Ctx.Done()
		e.Finish(context.Cause(e.Ctx))
		e.Close()
	}()
	st, err := reg.Cancel(t.Context(), "live", "stop")
	if st != run.StatusCancelled || err != nil {
		t.Fatalf("Cancel while running = %s, %v", st, err)
	}
	<-stopped // onCancel ran
	var ce *run.CancelledError
	if !errors.As(context.Cause(e.Ctx), &ce) || ce.Reason != "stop" || !errors.Is(ce, run.ErrCancelled) {
		t.Errorf("context cause = %v", context.Cause(e.Ctx))
	}

	// After the end, and twice: the terminal status.
	for range 2 {
		if st, _ := reg.Cancel(t.Context(), "live", "again"); st != run.StatusCancelled {
			t.Errorf("Cancel after end = %s", st)
		}
	}

	// A completed run stays completed.
	e, _ = reg.Begin(t.Context(), "done", nil)
	if st, _ := e.Finish(nil); st != run.StatusCompleted {
		t.Errorf("Finish = %s", st)
	}
	e.Close()
	if st, _ := reg.Cancel(t.Context(), "done", "late"); st != run.StatusCompleted {
		t.Errorf("Cancel after completion = %s", st)
	}
}

func TestRegistryCancelWaitIsBoundedByContext(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	e, _ := reg.Begin(t.Context(), "stuck", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if st, err := reg.Cancel(ctx, "stuck", "x"); st != run.StatusRunning || !errors.Is(err, context.Canceled) {
		t.Errorf("Cancel with a done context = %s, %v", st, err)
	}
	e.Finish(nil)
	e.Close()
}

func TestRegistryMemoryIsBounded(t *testing.T) {
	t.Parallel()
	reg := &run.Registry{MaxMemory: 10}
	for i := range 100 {
		reg.Cancel(t.Context(), fmt.Sprint("intent-", i), "x")
		e, _ := reg.Begin(t.Context(), fmt.Sprint("run-", i), nil)
		e.Finish(nil)
		e.Close()
	}
	// The oldest are forgotten: an old intent no longer cancels, an old run is unknown.
	e, _ := reg.Begin(t.Context(), "intent-0", nil)
	if e.Ctx.Err() != nil {
		t.Error("an intent older than MaxMemory still applied")
	}
	e.Finish(nil)
	e.Close()
	if st, _ := reg.Cancel(t.Context(), "run-0", "x"); st != run.StatusPending {
		t.Errorf("a run older than MaxMemory still reported %s", st)
	}
	if st, _ := reg.Cancel(t.Context(), "run-99", "x"); st != run.StatusCompleted {
		t.Errorf("a recent run reported %s", st)
	}

	// Memory is checked when an intent is used, not only when another is kept.
	reg = &run.Registry{Memory: time.Nanosecond}
	now := time.Now()
	run.SetRegistryClock(reg, func() time.Time { return now })
	reg.Cancel(t.Context(), "old", "x")
	now = now.Add(time.Millisecond) // the intent ages past Memory
	e, _ = reg.Begin(t.Context(), "old", nil)
	if e.Ctx.Err() != nil {
		t.Error("an expired intent still applied")
	}
	e.Finish(nil)
	e.Close()
	now = now.Add(time.Millisecond) // the end status ages past Memory
	if st, _ := reg.Cancel(t.Context(), "old", "x"); st != run.StatusPending {
		t.Errorf("an expired end status still reported: %s", st)
	}
}

func TestLogFollow(t *testing.T) {
	t.Parallel()
	var log run.Log
	ev := func(t run.EventType) *run.Event { return &run.Event{Event: t} }
	log.Emit(ev(run.EventRunStarted))

	var wg sync.WaitGroup
	results := make([][]int, 3)
	for r := range results {
		wg.Go(func() {
			log.Follow(context.Background(), r, func(e *run.Event) bool {
				results[r] = append(results[r], e.EventIndex)
				return true
			})
		})
	}
	log.Emit(ev(run.EventRunContent))
	log.Stop()
	if log.Emit(ev(run.EventRunContent)) {
		t.Error("a stopped log accepted a non-terminal event")
	}
	if !log.Emit(ev(run.EventRunCancelled)) {
		t.Error("a stopped log refused a terminal event")
	}
	log.Close()
	wg.Wait()
	want := [][]int{{0, 1, 2}, {1, 2}, {2}}
	if fmt.Sprint(results) != fmt.Sprint(want) {
		t.Errorf("readers saw %v, want %v", results, want)
	}
	if log.Emit(ev(run.EventRunCompleted)) {
		t.Error("a closed log accepted an event")
	}
	if n := log.Len(); n != 3 {
		t.Errorf("Len = %d", n)
	}
}

func TestLogFollowEndsWithContext(t *testing.T) {
	t.Parallel()
	var log run.Log
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- log.Follow(ctx, 0, func(*run.Event) bool { return true }) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow = %v", err)
	}
	// A later emit must not block on the reader that left.
	log.Emit(&run.Event{Event: run.EventRunStarted})
}

func TestExecPanicEndsRunError(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	base := &run.Event{RunID: "p"}
	out := &run.Output{RunID: "p"}
	x, err := run.Go(t.Context(), run.Spec{Registry: &reg, Base: base, Kind: run.KindAgent, Output: out}, func(*run.Exec) error { panic("bad") })
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Wait(); got.Status != run.StatusError || !strings.Contains(got.Error, "panic: bad") {
		t.Errorf("output = %+v", got)
	}
	if evs := x.Log.Events(); len(evs) != 1 || evs[0].Event != run.EventRunError {
		t.Errorf("events = %v", evs)
	}
}

func BenchmarkSlug(b *testing.B) {
	for _, name := range []string{"research", "Research Agent"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				run.Slug(name)
			}
		})
	}
}

// TestLogManyEvents checks indexes and pointers across many segments.
func TestLogManyEvents(t *testing.T) {
	t.Parallel()
	var log run.Log
	first := make([]*run.Event, 0, 1000)
	for i := range 1000 {
		log.Emit(&run.Event{Event: run.EventRunContent, Content: fmt.Sprint(i)})
		if i == 0 {
			first = append(first, log.Events()[0])
		}
	}
	log.Close()
	for i, ev := range log.Events() {
		if ev.EventIndex != i || ev.Content != fmt.Sprint(i) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	if first[0].Content != "0" {
		t.Errorf("an early event moved or changed: %+v", first[0])
	}
	n := 0
	log.Follow(t.Context(), 990, func(ev *run.Event) bool { n++; return true })
	if n != 10 {
		t.Errorf("Follow from 990 read %d events", n)
	}
}

func TestRegistryRequestCancelDoesNotWait(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	if st := reg.RequestCancel("unknown", "x"); st != run.StatusPending {
		t.Errorf("unknown run: %s, want PENDING", st)
	}
	e, _ := reg.Begin(t.Context(), "live", nil)
	if st := reg.RequestCancel("live", "stop"); st != run.StatusRunning || e.Ctx.Err() == nil {
		t.Errorf("live run: %s, context %v; want RUNNING with the context cancelled", st, e.Ctx.Err())
	}
	e.Finish(nil)
	e.Close()
	if st := reg.RequestCancel("live", "again"); st != run.StatusCancelled {
		t.Errorf("ended run: %s, want CANCELLED", st)
	}
}
