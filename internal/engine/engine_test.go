package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRegistryLifecycle(t *testing.T) {
	t.Parallel()
	var reg run.Registry // the zero value works

	// Before start: the intent is kept; the run starts cancelled.
	if st, err := reg.Cancel(t.Context(), "early", "too soon"); st != run.StatusPending || err != nil {
		t.Fatalf("Cancel before start = %s, %v", st, err)
	}
	e, err := engine.Begin(&reg, t.Context(), "early", nil)
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
	e, err = engine.Begin(&reg, t.Context(), "live", func() { close(stopped) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Begin(&reg, t.Context(), "live", nil); !errors.Is(err, run.ErrDuplicateID) {
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
	e, _ = engine.Begin(&reg, t.Context(), "done", nil)
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
	e, _ := engine.Begin(&reg, t.Context(), "stuck", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if st, err := reg.Cancel(ctx, "stuck", "x"); st != run.StatusRunning || !errors.Is(err, context.Canceled) {
		t.Errorf("Cancel with a done context = %s, %v", st, err)
	}
	e.Finish(nil)
	e.Close()
}

func TestLogFollow(t *testing.T) {
	t.Parallel()
	var log engine.Log
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
	var log engine.Log
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
	x, err := engine.Go(t.Context(), engine.Spec{Registry: &reg, Base: base, Kind: run.KindAgent, Output: out}, func(engine.Run) error { panic("bad") })
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

func TestLogManyEvents(t *testing.T) {
	t.Parallel()
	var log engine.Log
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
	e, _ := engine.Begin(&reg, t.Context(), "live", nil)
	if st := reg.RequestCancel("live", "stop"); st != run.StatusRunning || e.Ctx.Err() == nil {
		t.Errorf("live run: %s, context %v; want RUNNING with the context cancelled", st, e.Ctx.Err())
	}
	e.Finish(nil)
	e.Close()
	if st := reg.RequestCancel("live", "again"); st != run.StatusCancelled {
		t.Errorf("ended run: %s, want CANCELLED", st)
	}
}
