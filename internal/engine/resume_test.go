package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/run"
)

// indexes returns the event indexes of evs.
func indexes(evs []*run.Event) []int {
	idx := make([]int, len(evs))
	for i, ev := range evs {
		idx[i] = ev.EventIndex
	}
	return idx
}

func TestLogStartAt(t *testing.T) {
	t.Parallel()
	var log engine.Log
	log.StartAt(5)
	if n := log.Len(); n != 5 {
		t.Errorf("Len before any event = %d, want 5", n)
	}
	if evs := log.Events(); len(evs) != 0 {
		t.Errorf("Events before any event = %v", indexes(evs))
	}

	// A reader waiting before the first event gets it at its index.
	var follower []int
	var wg sync.WaitGroup
	wg.Go(func() {
		log.Follow(t.Context(), 0, func(ev *run.Event) bool {
			follower = append(follower, ev.EventIndex)
			return true
		})
	})
	for range 3 {
		log.Emit(&run.Event{Event: run.EventRunContent})
	}
	log.StartAt(100) // after the first event: changes nothing
	log.Emit(&run.Event{Event: run.EventRunCompleted})
	log.Close()
	wg.Wait()

	tests := []struct {
		from int
		want []int
	}{
		{0, []int{5, 6, 7, 8}}, // only the events the log holds
		{4, []int{5, 6, 7, 8}},
		{5, []int{5, 6, 7, 8}},
		{7, []int{7, 8}},
		{9, []int{}},
	}
	for _, tt := range tests {
		if got := indexes(log.From(tt.from, nil)); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("From(%d) = %v, want %v", tt.from, got, tt.want)
		}
		var followed []int
		log.Follow(t.Context(), tt.from, func(ev *run.Event) bool {
			followed = append(followed, ev.EventIndex)
			return true
		})
		if fmt.Sprint(followed) != fmt.Sprint(tt.want) {
			t.Errorf("Follow(%d) = %v, want %v", tt.from, followed, tt.want)
		}
	}
	if fmt.Sprint(follower) != "[5 6 7 8]" {
		t.Errorf("a reader waiting from 0 read %v, want [5 6 7 8]", follower)
	}
	if n := log.Len(); n != 9 {
		t.Errorf("Len = %d, want 9", n)
	}
}

// TestLogStartAtManyEvents checks indexes and contents across many segments of a log
// that starts late.
func TestLogStartAtManyEvents(t *testing.T) {
	t.Parallel()
	const first, n = 37, 1000
	var log engine.Log
	log.StartAt(first)
	for i := range n {
		log.Emit(&run.Event{Event: run.EventRunContent, Content: fmt.Sprint(first + i)})
	}
	log.Close()
	evs := log.Events()
	if len(evs) != n {
		t.Fatalf("Events holds %d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.EventIndex != first+i || ev.Content != fmt.Sprint(first+i) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	read := 0
	log.Follow(t.Context(), first+n-10, func(ev *run.Event) bool { read++; return true })
	if read != 10 {
		t.Errorf("Follow from %d read %d events, want 10", first+n-10, read)
	}
}

// beginRecorder records what Begin and End see of a run.
type beginRecorder struct {
	resume         *run.Resume
	lenAtBegin     int
	endedAt, ended int
	err            error // Begin's error
}

func (r *beginRecorder) Begin(ctx context.Context, x *run.Exec) error {
	r.resume, r.lenAtBegin = x.Resume, x.Log.Len()
	return r.err
}

func (r *beginRecorder) End(ctx context.Context, x *run.Exec) error {
	r.ended++
	r.endedAt = x.Log.Len()
	return nil
}

func TestGoResume(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	resume := &run.Resume{NextEvent: 7, Steps: []run.StepResult{{StepName: "a", Status: run.StatusCompleted}}}
	rec := &beginRecorder{}
	base := &run.Event{RunID: "resumed", Origin: &run.Origin{WorkflowID: "w"}}
	spec := engine.Spec{Registry: &reg, Recorder: rec, Base: base, Kind: run.KindWorkflow, Output: &run.Output{RunID: "resumed"}, Resume: resume}
	x, err := engine.Go(t.Context(), spec, func(x engine.Run) error {
		if x.X.Resume != resume {
			return errors.New("body: x.Resume is not the spec's")
		}
		x.Log.Emit(&run.Event{Event: run.EventStepStarted, RunID: x.X.ID})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev, err := range x.Stream {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", ev.EventIndex, ev.Event))
	}
	if want := "[7 StepStarted 8 WorkflowCompleted]"; fmt.Sprint(got) != want {
		t.Errorf("stream = %v, want %s", got, want)
	}
	if out := x.Wait(); out.Status != run.StatusCompleted {
		t.Errorf("status %s, error %q", out.Status, out.Error)
	}
	if x.Resume != resume || rec.resume != resume || rec.lenAtBegin != 7 {
		t.Errorf("x.Resume = %p, recorder saw %p and Len %d; want %p and 7", x.Resume, rec.resume, rec.lenAtBegin, resume)
	}
	if rec.ended != 1 || rec.endedAt != 9 {
		t.Errorf("End called %d times at Len %d, want once at 9", rec.ended, rec.endedAt)
	}
}

func TestGoWithoutResume(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	base := &run.Event{RunID: "fresh"}
	x, err := engine.Go(t.Context(), engine.Spec{Registry: &reg, Base: base, Kind: run.KindAgent, Output: &run.Output{RunID: "fresh"}}, func(engine.Run) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	x.Wait()
	if evs := x.Log.Events(); x.Resume != nil || len(evs) != 1 || evs[0].EventIndex != 0 {
		t.Errorf("x.Resume = %v, events %v; want nil and [0]", x.Resume, indexes(evs))
	}
}

// A resumed run whose recorder refuses it does not start, and its id is free again.
func TestGoResumeBeginFails(t *testing.T) {
	t.Parallel()
	var reg run.Registry
	rec := &beginRecorder{err: errors.New("no such record")}
	spec := engine.Spec{Registry: &reg, Recorder: rec, Base: &run.Event{RunID: "r"}, Kind: run.KindAgent,
		Output: &run.Output{RunID: "r"}, Resume: &run.Resume{NextEvent: 3}}
	ran := false
	if _, err := engine.Go(t.Context(), spec, func(engine.Run) error { ran = true; return nil }); !errors.Is(err, rec.err) {
		t.Errorf("Go = %v, want the recorder's error", err)
	}
	if ran || rec.ended != 0 {
		t.Errorf("body ran %v, End called %d times; want neither", ran, rec.ended)
	}
	spec.Recorder = nil
	x, err := engine.Go(t.Context(), spec, func(engine.Run) error { return nil })
	if err != nil {
		t.Fatalf("Go again with the same id: %v", err)
	}
	x.Wait()
}
