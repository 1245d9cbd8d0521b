package agent_test

import (
	"errors"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
)

// TestResume: an agent run that continues a stored run starts over, its events
// numbered from NextEvent; Steps mean nothing to an agent.
func TestResume(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: scripted.New("hello there")}
	resume := &run.Resume{NextEvent: 4, Steps: []run.StepResult{{StepName: "ignored", Status: run.StatusCompleted}}}
	evs := collect(t, a, t.Context(), "hi", run.WithResume(resume))
	want := []run.EventType{run.EventRunStarted, run.EventModelRequestStarted, run.EventRunContent, run.EventRunContent,
		run.EventModelRequestCompleted, run.EventRunContentCompleted, run.EventRunCompleted}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if ev.Event != want[i] || ev.EventIndex != 4+i {
			t.Errorf("event %d: %s at index %d, want %s at %d", i, ev.Event, ev.EventIndex, want[i], 4+i)
		}
	}
	if last := evs[len(evs)-1]; last.Content != "hello there" {
		t.Errorf("RunCompleted content %q", last.Content)
	}
}

func TestResumeNegativeIndex(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: scripted.New("x")}
	if x, err := a.Start(t.Context(), "hi", run.WithResume(&run.Resume{NextEvent: -2})); x != nil || !errors.Is(err, run.ErrInvalid) {
		t.Errorf("Start = %v, %v; want ErrInvalid", x, err)
	}
}
