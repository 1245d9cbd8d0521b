package host

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// syncBuffer is a log destination safe for the recovery loop's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRecoveryLogsNameTheDeadReplica: the logs of a run taken over and of a run
// ended "interrupted" name, as from_replica, the replica that left it behind,
// not the one recovering it.
func TestRecoveryLogsNameTheDeadReplica(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	past := time.Now().Add(-time.Minute)
	left := func(id, component string) {
		err := st.CreateRun(ctx, &store.Run{ID: id, SessionID: "s", Kind: run.KindWorkflow, ComponentID: component,
			Status: run.StatusRunning, Input: "go", Output: run.Output{RunID: id, WorkflowID: component},
			Replica: "dead-" + id, LeaseUntil: past, CreatedAt: past, UpdatedAt: past})
		if err != nil {
			t.Fatal(err)
		}
	}
	left("resumed", "quick") // never started: taken over
	left("ended", "gone")    // of a workflow no longer served: ended ERROR

	var logs syncBuffer
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{quickWorkflow("Quick")},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, sig)
	if err != nil {
		t.Fatal(err)
	}
	<-sig.recovered
	if r := h.Lookup("resumed"); r != nil {
		if out, err := r.Wait(ctx); err != nil || out.Status != run.StatusCompleted {
			t.Errorf("taken-over run ended %s, %v", out.Status, err)
		}
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="host: took over a run left behind" run_id=resumed component=quick from_replica=dead-resumed `,
		`run_id=ended component=gone from_replica=dead-ended`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// TestTakeoverOfACancelledRunKeepsItsPartialText: a run whose process died while
// a step streamed, and that was cancelled while no process owned it, is taken over
// only to end CANCELLED; its content is the text the interrupted step had
// streamed, which its stored events hold, not nothing.
func TestTakeoverOfACancelledRunKeepsItsPartialText(t *testing.T) {
	// A workflow per host: a host keeps its registry in the workflows it serves.
	twoSteps := func() *workflow.Workflow {
		return &workflow.Workflow{Name: "Two", Steps: []workflow.Step{
			workflow.AgentStep("first", &agent.Agent{Name: "first agent", Model: scripted.New("one")}, ""),
			workflow.AgentStep("second", &agent.Agent{Name: "second agent", Model: scripted.New("two")}, ""),
		}}
	}
	ev := func(i int, typ run.EventType, runID, step, content string) store.Event {
		e := run.Event{Event: typ, RunID: runID, EventIndex: i, Content: content}
		e.Origin = &run.Origin{WorkflowID: "two"}
		e.StepName = step
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return store.Event{RunID: "left", Index: i, Type: typ, Data: data, CreatedAt: time.Now()}
	}
	for _, tt := range []struct {
		name   string
		steps  []run.StepResult
		events []store.Event
		want   string
	}{
		{"in its first step", nil, []store.Event{
			ev(0, run.EventWorkflowStarted, "left", "", ""),
			ev(1, run.EventStepStarted, "left", "first", ""),
			ev(2, run.EventRunContent, "agent-1", "", "hold "),
			ev(3, run.EventRunContent, "agent-1", "", "hold "),
		}, "hold hold "},
		{"in its second step", []run.StepResult{{StepName: "first", Content: "one", Status: run.StatusCompleted}}, []store.Event{
			ev(0, run.EventWorkflowStarted, "left", "", ""),
			ev(1, run.EventStepStarted, "left", "first", ""),
			ev(2, run.EventRunContent, "agent-1", "", "one"),
			ev(3, run.EventStepCompleted, "left", "first", "one"),
			ev(4, run.EventStepStarted, "left", "second", ""),
			ev(5, run.EventRunContent, "agent-2", "", "tw"),
		}, "tw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			past := time.Now().Add(-time.Minute)
			err = st.CreateRun(ctx, &store.Run{ID: "left", Kind: run.KindWorkflow, ComponentID: "two",
				Status: run.StatusRunning, Input: "go", Output: run.Output{RunID: "left", WorkflowID: "two", StepResults: tt.steps},
				Replica: "dead", LeaseUntil: past, CreatedAt: past, UpdatedAt: past})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.AppendEvents(ctx, tt.events); err != nil {
				t.Fatal(err)
			}
			if err := st.CancelRun(ctx, "left", "stop"); err != nil {
				t.Fatal(err)
			}
			sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
			h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{twoSteps()}}, sig)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Shutdown(ctx)
			<-sig.recovered
			// The run may have ended before a Lookup could see it: wait by id.
			if st, err := h.Wait(ctx, "left"); err != nil || st != run.StatusCancelled {
				t.Errorf("taken-over run ended %s, %v; want CANCELLED", st, err)
			}
			if err := h.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			stored, err := st.GetRun(ctx, "left")
			if err != nil || stored.Status != run.StatusCancelled || stored.Output.Content != tt.want {
				t.Errorf("stored: %v %q, %v; want CANCELLED with %q", stored.Status, stored.Output.Content, err, tt.want)
			}
		})
	}
}

// TestTakeoverMarksTheInterruptedStep: a run taken over mid-step ends the agent run
// its dead process left open (RunError) and says, with StepRetried, that the step
// runs again from its start, before the step's new events; then it completes.
func TestTakeoverMarksTheInterruptedStep(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ev := func(i int, typ run.EventType, runID, step, content string) store.Event {
		e := run.Event{Event: typ, RunID: runID, EventIndex: i, Content: content, Origin: &run.Origin{WorkflowID: "quick", StepName: step}}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return store.Event{RunID: "left", Index: i, Type: typ, Data: data, CreatedAt: time.Now()}
	}
	past := time.Now().Add(-time.Minute)
	err = st.CreateRun(ctx, &store.Run{ID: "left", Kind: run.KindWorkflow, ComponentID: "quick",
		Status: run.StatusRunning, Input: "go", Output: run.Output{RunID: "left", WorkflowID: "quick"},
		Replica: "dead", LeaseUntil: past, CreatedAt: past, UpdatedAt: past})
	if err != nil {
		t.Fatal(err)
	}
	err = st.AppendEvents(ctx, []store.Event{
		ev(0, run.EventWorkflowStarted, "left", "", ""),
		ev(1, run.EventStepStarted, "left", "say", ""),
		ev(2, run.EventRunStarted, "agent-1", "say", ""),
		ev(3, run.EventRunContent, "agent-1", "say", "hel"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sig := testSignals{recovered: make(chan struct{}, 1), recoverTick: make(chan time.Time)}
	h, err := newHost(st, Options{Replica: "B", Workflows: []*workflow.Workflow{quickWorkflow("Quick")}}, sig)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(ctx)
	<-sig.recovered
	// The run may have ended before a Lookup could see it: wait by id.
	if st, err := h.Wait(ctx, "left"); err != nil || st != run.StatusCompleted {
		t.Fatalf("taken-over run ended %s, %v", st, err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx, "left", 4, 2)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events after the takeover: %d, %v", len(evs), err)
	}
	var first run.Event
	if err := json.Unmarshal(evs[0].Data, &first); err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != run.EventRunError || first.RunID != "agent-1" || evs[1].Type != run.EventStepRetried {
		t.Errorf("events 4 and 5 after the takeover: %s of %s, %s; want RunError of agent-1, StepRetried", evs[0].Type, first.RunID, evs[1].Type)
	}
}
