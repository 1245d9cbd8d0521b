package workflow_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// streamUntil streams w in a goroutine, calls act (in another goroutine) at the first
// event for which at reports true, and returns every event once the stream ends.
func streamUntil(t *testing.T, ctx context.Context, w *workflow.Workflow, id string, at func(*run.Event) bool, act func()) []*run.Event {
	t.Helper()
	var evs []*run.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		acted := false
		for ev, err := range w.Stream(ctx, "go", run.WithID(id)) {
			if err != nil {
				t.Errorf("stream: %v", err)
				return
			}
			evs = append(evs, ev)
			if !acted && at(ev) {
				acted = true
				go act()
			}
		}
	}()
	within(t, done, "stream")
	return evs
}

func slowAgent(name, text string) *agent.Agent {
	return &agent.Agent{Name: name, Model: &scripted.Model{Turns: []scripted.Turn{{Text: text}}, Delay: time.Hour}}
}

func terminalsOf(evs []*run.Event) map[string][]run.EventType {
	m := map[string][]run.EventType{}
	for _, ev := range evs {
		if ev.Event.Terminal() {
			m[ev.RunID] = append(m[ev.RunID], ev.Event)
		}
	}
	return m
}

func TestCancelDuringSecondStep(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.AgentStep("research", echo("facts"), ""),
		workflow.AgentStep("writing", slowAgent("writer", "Once upon a time"), ""),
	}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	var writerRun string
	x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
		if ev.Event == run.EventRunContent && ev.StepName == "writing" {
			writerRun = ev.RunID
			return false
		}
		return true
	})
	st, err := w.CancelRun(t.Context(), id)
	if st != run.StatusCancelled || err != nil {
		t.Fatalf("CancelRun = %s, %v", st, err)
	}
	out := x.Wait()
	if out.Status != run.StatusCancelled || out.Content != "Once " {
		t.Fatalf("output = %s %q, want CANCELLED with the running step's partial content", out.Status, out.Content)
	}
	if len(out.StepResults) != 2 || out.StepResults[0].Content != "facts" || out.StepResults[0].Status != run.StatusCompleted ||
		out.StepResults[1].Status != run.StatusCancelled {
		t.Errorf("step results = %+v", out.StepResults)
	}
	// The cancel went all the way down: the writer's own run ended CANCELLED.
	terms := terminalsOf(x.Log.Events())
	if got := terms[writerRun]; len(got) != 1 || got[0] != run.EventRunCancelled {
		t.Errorf("writer run's terminal events = %v", got)
	}
	if got := terms[id]; len(got) != 1 || got[0] != run.EventWorkflowCancelled {
		t.Errorf("workflow's terminal events = %v", got)
	}
	evs := x.Log.Events()
	if evs[len(evs)-1].Event != run.EventWorkflowCancelled {
		t.Errorf("the stream does not end with WorkflowCancelled")
	}
}

func TestCancelBetweenSteps(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.FuncStep("first", fn("first output")),
		workflow.FuncStep("wait", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			close(release)
			<-ctx.Done()
			return workflow.StepOutput{}, ctx.Err()
		}),
	}}
	id := run.NewID()
	go func() { <-release; w.CancelRun(context.Background(), id) }()
	out, err := w.Run(t.Context(), "x", run.WithID(id))
	// The running step produced nothing: the content is the last finished step's.
	if !errors.Is(err, run.ErrCancelled) || out.Content != "first output" || out.StepResults[0].Content != "first output" ||
		out.StepResults[1].Status != run.StatusCancelled {
		t.Fatalf("Run = %+v, %v", out, err)
	}
}

// TestCancelInsideParallel cancels while three branches stream: every branch stops,
// each branch's agent run ends CANCELLED, and nothing a branch produces after the
// cancel reaches the stream.
func TestCancelInsideParallel(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		&workflow.Parallel{Name: "fan", Steps: []workflow.Step{
			workflow.AgentStep("a", slowAgent("A", "a1 a2 a3"), ""),
			workflow.AgentStep("b", slowAgent("B", "b1 b2 b3"), ""),
			workflow.FuncStep("c", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				<-ctx.Done()
				return workflow.StepOutput{Content: "late"}, nil
			}),
		}},
	}}
	id := run.NewID()
	seen := 0
	evs := streamUntil(t, t.Context(), w, id, func(ev *run.Event) bool {
		if ev.Event == run.EventRunContent {
			seen++
		}
		return seen == 2 // both agents have streamed their first word
	}, func() { w.CancelRun(context.Background(), id) })

	cancelAt := -1
	for i, ev := range evs {
		if ev.Event == run.EventRunCancelled && cancelAt < 0 {
			cancelAt = i
		}
	}
	if cancelAt < 0 {
		t.Fatalf("no RunCancelled in %s", types(evs))
	}
	for _, ev := range evs[cancelAt:] {
		if !ev.Event.Terminal() {
			t.Errorf("after the cancel the stream carried %s", ev.Event)
		}
	}
	terms := terminalsOf(evs)
	if len(terms) != 3 { // the workflow and two agent runs
		t.Errorf("terminal events per run: %v", terms)
	}
	for runID, ts := range terms {
		if len(ts) != 1 || (ts[0] != run.EventRunCancelled && ts[0] != run.EventWorkflowCancelled) {
			t.Errorf("run %s ended with %v", runID, ts)
		}
	}
}

func TestCancelNestedAgentRunByItsID(t *testing.T) {
	t.Parallel()
	reg := new(run.Registry)
	w := &workflow.Workflow{Name: "wf", Registry: reg, Steps: []workflow.Step{
		workflow.AgentStep("slow", slowAgent("S", "one two"), ""),
		workflow.FuncStep("never", fn("never")),
	}}
	id2 := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id2))
	if err != nil {
		t.Fatal(err)
	}
	var agentRun string
	x.Log.Follow(t.Context(), 0, func(ev *run.Event) bool {
		if ev.Event == run.EventRunContent {
			agentRun = ev.RunID
			return false
		}
		return true
	})
	if st, _ := reg.Cancel(t.Context(), agentRun, "stop the agent"); st != run.StatusCancelled {
		t.Fatalf("cancel agent run = %s", st)
	}
	out := x.Wait()
	if out.Status != run.StatusCancelled || out.Reason != "stop the agent" {
		t.Fatalf("workflow output = %s (%q), want CANCELLED with the agent's reason", out.Status, out.Reason)
	}
}

func TestContextCancelCancelsWorkflow(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.AgentStep("s", slowAgent("S", "x y"), "")}}
	ctx, cancel := context.WithCancel(t.Context())
	evs := streamUntil(t, ctx, w, run.NewID(), func(ev *run.Event) bool { return ev.Event == run.EventRunContent }, cancel)
	if last := evs[len(evs)-1]; last.Event != run.EventWorkflowCancelled {
		t.Fatalf("last = %s", last.Event)
	}
}

func TestWorkflowCompletionRacesCancel(t *testing.T) {
	t.Parallel()
	n := 2000
	if testing.Short() {
		n = 200
	}
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.AgentStep("one", echo("a b"), ""),
		&workflow.Parallel{Name: "p", Steps: []workflow.Step{
			workflow.AgentStep("two", echo("c d"), ""),
			workflow.FuncStep("three", fn("e")),
		}},
	}}
	counts := map[run.Status]int{}
	for range n {
		id := run.NewID()
		x, err := w.Start(t.Context(), "go", run.WithID(id))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan run.Status, 1)
		go func() { st, _ := w.CancelRun(context.Background(), id); got <- st }()
		out := x.Wait()
		evs := x.Log.Events()
		for runID, ts := range terminalsOf(evs) {
			if len(ts) != 1 {
				t.Fatalf("run %s: terminal events %v", runID, ts)
			}
		}
		last := evs[len(evs)-1]
		if last.RunID != id || !last.Event.Terminal() {
			t.Fatalf("stream ends with %s of %s", last.Event, last.RunID)
		}
		if st := <-got; st != out.Status {
			t.Fatalf("CancelRun said %s, the run ended %s", st, out.Status)
		}
		counts[out.Status]++
	}
	t.Logf("outcomes over %d races: %v", n, counts)
}
