package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// counted returns a function step that counts its calls in n and returns content.
func counted(name, content string, n *atomic.Int32) *workflow.Task {
	return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		n.Add(1)
		return workflow.StepOutput{Content: content}, nil
	})
}

// threeSteps is two counted function steps, then an agent step on a scripted model
// that keeps the input it was given in *agentInput.
func threeSteps(calls []*atomic.Int32, agentInput *atomic.Value) *workflow.Workflow {
	writer := &agent.Agent{Name: "writer", Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		agentInput.Store(req.Messages[len(req.Messages)-1].Content)
		return scripted.Turn{Text: "the end"}
	}}}
	return &workflow.Workflow{Name: "three", Steps: []workflow.Step{
		counted("first", "one", calls[0]),
		counted("second", "two", calls[1]),
		workflow.AgentStep("third", writer, ""),
	}}
}

func doneStep(name, content string) run.StepResult {
	return run.StepResult{StepID: run.Slug(name), StepName: name, Status: run.StatusCompleted, Content: content}
}

func resultNames(results []run.StepResult) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%s=%s(%s) ", r.StepName, r.Content, r.Status)
	}
	return strings.TrimSpace(b.String())
}

func TestResumeRunsOnlyTheStepsLeft(t *testing.T) {
	t.Parallel()
	calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
	var agentInput atomic.Value
	w := threeSteps(calls, &agentInput)
	id := run.NewID()
	resume := &run.Resume{NextEvent: 12, Steps: []run.StepResult{doneStep("first", "one"), doneStep("second", "two")}}
	evs := collect(t, t.Context(), w, "topic", run.WithID(id), run.WithResume(resume))

	want := "StepStarted RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted WorkflowCompleted"
	if got := types(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	for i, ev := range evs {
		if ev.EventIndex != 12+i {
			t.Errorf("event %d (%s) has index %d, want %d", i, ev.Event, ev.EventIndex, 12+i)
		}
	}
	if ev := evs[0]; ev.StepName != "third" || ev.StepIndex == nil || *ev.StepIndex != 2 {
		t.Errorf("StepStarted = %+v, want step third at index 2", ev)
	}
	if n1, n2 := calls[0].Load(), calls[1].Load(); n1 != 0 || n2 != 0 {
		t.Errorf("finished steps ran again: first %d, second %d times", n1, n2)
	}
	if got, _ := agentInput.Load().(string); got != "topic\n\nPrevious step output:\ntwo" {
		t.Errorf("the agent was given %q", got)
	}
	wantResults := "first=one(COMPLETED) second=two(COMPLETED) third=the end(COMPLETED)"
	last := evs[len(evs)-1]
	if last.Content != "the end" || last.Detail == nil || resultNames(last.Detail.StepResults) != wantResults {
		t.Errorf("WorkflowCompleted = %+v", last)
	}

	// The same through Run: the output holds every step's result.
	out, err := w.Run(t.Context(), "topic", run.WithResume(resume))
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "the end" || resultNames(out.StepResults) != wantResults {
		t.Errorf("output: content %q, steps %s", out.Content, resultNames(out.StepResults))
	}
}

func TestResumeFromEventZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		steps  []run.StepResult
		calls  [2]int32
		events string
	}{
		{"queued run", nil, [2]int32{1, 1},
			"WorkflowStarted StepStarted StepCompleted StepStarted StepCompleted StepStarted RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted WorkflowCompleted"},
		{"one step finished", []run.StepResult{doneStep("first", "one")}, [2]int32{0, 1},
			"WorkflowStarted StepStarted StepCompleted StepStarted RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted WorkflowCompleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
			var agentInput atomic.Value
			evs := collect(t, t.Context(), threeSteps(calls, &agentInput), "topic", run.WithResume(&run.Resume{Steps: tt.steps}))
			if got := types(evs); got != tt.events {
				t.Fatalf("events:\n got %s\nwant %s", got, tt.events)
			}
			for i, ev := range evs {
				if ev.EventIndex != i {
					t.Errorf("event %d has index %d", i, ev.EventIndex)
				}
			}
			if got := [2]int32{calls[0].Load(), calls[1].Load()}; got != tt.calls {
				t.Errorf("calls = %v, want %v", got, tt.calls)
			}
		})
	}
}

// TestResumeSeedsOutputs checks that the step after the finished ones sees their
// agent and function steps, those inside containers included, in its Outputs.
func TestResumeSeedsOutputs(t *testing.T) {
	t.Parallel()
	var seen *workflow.Input
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		&workflow.Parallel{Name: "both", Steps: []workflow.Step{workflow.FuncStep("a", fn("A")), workflow.FuncStep("b", fn("B"))}},
		&workflow.Condition{Name: "if", If: func(*workflow.Input) bool { return false }, Steps: []workflow.Step{workflow.FuncStep("then", fn("T"))}},
		workflow.FuncStep("last", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			seen = in
			return workflow.StepOutput{Content: "done"}, nil
		}),
	}}
	both := doneStep("both", "## a\nA\n\n## b\nB")
	both.Steps = []run.StepResult{doneStep("a", "A"), doneStep("b", "B")}
	skipped := doneStep("if", both.Content) // a condition that did not hold passes the content on
	out, err := w.Run(t.Context(), "x", run.WithResume(&run.Resume{NextEvent: 9, Steps: []run.StepResult{both, skipped}}))
	if err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Previous != both.Content || resultNames(seen.Outputs) != "a=A(COMPLETED) b=B(COMPLETED)" {
		t.Fatalf("the last step saw %+v", seen)
	}
	if a, ok := seen.Output("a"); !ok || a.Content != "A" {
		t.Errorf(`Output("a") = %+v, %v`, a, ok)
	}
	if out.Content != "done" || len(out.StepResults) != 3 || len(out.StepResults[0].Steps) != 2 {
		t.Errorf("output: content %q, steps %+v", out.Content, out.StepResults)
	}
}

// TestResumeAllStepsFinished: a run whose process died after its last step but before
// its end was written completes at once with the results it had.
func TestResumeAllStepsFinished(t *testing.T) {
	t.Parallel()
	calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
	var agentInput atomic.Value
	w := threeSteps(calls, &agentInput)
	steps := []run.StepResult{doneStep("first", "one"), doneStep("second", "two"), doneStep("third", "the end")}
	evs := collect(t, t.Context(), w, "topic", run.WithResume(&run.Resume{NextEvent: 20, Steps: steps}))
	if len(evs) != 1 || evs[0].Event != run.EventWorkflowCompleted || evs[0].EventIndex != 20 || evs[0].Content != "the end" {
		t.Fatalf("events = %s, first %+v", types(evs), evs[0])
	}
	if calls[0].Load()+calls[1].Load() != 0 || agentInput.Load() != nil {
		t.Error("a finished step ran again")
	}
}

func TestResumeInvalid(t *testing.T) {
	t.Parallel()
	failed := doneStep("second", "")
	failed.Status = run.StatusError
	tests := []struct {
		name   string
		resume *run.Resume
		want   string
	}{
		{"too many steps", &run.Resume{NextEvent: 30, Steps: []run.StepResult{
			doneStep("first", "1"), doneStep("second", "2"), doneStep("third", "3"), doneStep("fourth", "4"),
		}}, "cannot resume after 4 finished steps: the workflow has only 3"},
		{"other steps", &run.Resume{NextEvent: 5, Steps: []run.StepResult{doneStep("first", "1"), doneStep("writing", "2")}},
			`finished step 1 is "writing", but the workflow's step 1 is "second"`},
		{"step not completed", &run.Resume{NextEvent: 5, Steps: []run.StepResult{doneStep("first", "1"), failed}},
			`after step "second": its status is ERROR`},
		{"negative index", &run.Resume{NextEvent: -1}, "cannot resume at event index -1"},
	}
	for _, tt := range tests {
		calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
		var agentInput atomic.Value
		w := threeSteps(calls, &agentInput)
		x, err := w.Start(t.Context(), "x", run.WithResume(tt.resume))
		if x != nil || !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Start = %v, %v; want an error about %q", tt.name, x, err, tt.want)
		}
		if calls[0].Load()+calls[1].Load() != 0 {
			t.Errorf("%s: a step ran", tt.name)
		}
	}
}

// checkpoints is a Recorder and Checkpointer that keeps what it is given.
type checkpoints struct {
	err error // what Checkpoint returns
	// wait, when set, is called by Checkpoint before it returns, with its context.
	wait func(ctx context.Context, x *run.Exec)

	mu    sync.Mutex
	calls []string // the steps of each checkpoint, as names gives them
	ctxOK []bool   // each checkpoint's context had a deadline and was not done
}

func (c *checkpoints) Begin(ctx context.Context, x *run.Exec) error { return nil }
func (c *checkpoints) End(ctx context.Context, x *run.Exec) error   { return nil }

func (c *checkpoints) Checkpoint(ctx context.Context, x *run.Exec, steps []run.StepResult) error {
	if c.wait != nil {
		c.wait(ctx, x)
	}
	_, deadline := ctx.Deadline()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, resultNames(steps))
	c.ctxOK = append(c.ctxOK, deadline && ctx.Err() == nil)
	return c.err
}

func (c *checkpoints) seen() ([]string, []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.ctxOK
}

func TestCheckpointAfterEachStepButTheLast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		resume *run.Resume
		want   []string
	}{
		{"new run", nil, []string{
			"first=one(COMPLETED)",
			"first=one(COMPLETED) second=two(COMPLETED)",
		}},
		{"resumed run", &run.Resume{NextEvent: 4, Steps: []run.StepResult{doneStep("first", "one")}}, []string{
			"first=one(COMPLETED) second=two(COMPLETED)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
			var agentInput atomic.Value
			cp := &checkpoints{}
			w := threeSteps(calls, &agentInput)
			w.Recorder = cp
			var opts []run.Option
			if tt.resume != nil {
				opts = append(opts, run.WithResume(tt.resume))
			}
			out, err := w.Run(t.Context(), "topic", opts...)
			if err != nil || out.Content != "the end" {
				t.Fatalf("Run = %q, %v", out.Content, err)
			}
			got, ctxOK := cp.seen()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("checkpoints:\n got %q\nwant %q", got, tt.want)
			}
			for i, ok := range ctxOK {
				if !ok {
					t.Errorf("checkpoint %d: its context had no deadline or was done", i)
				}
			}
		})
	}
}

func TestCheckpointErrorEndsTheRun(t *testing.T) {
	t.Parallel()
	calls := []*atomic.Int32{new(atomic.Int32), new(atomic.Int32)}
	var agentInput atomic.Value
	cpErr := errors.New("disk full")
	w := threeSteps(calls, &agentInput)
	w.Recorder = &checkpoints{err: cpErr}
	x, err := w.Start(t.Context(), "topic")
	if err != nil {
		t.Fatal(err)
	}
	var evs []*run.Event
	for ev := range x.Stream {
		evs = append(evs, ev)
	}
	want := "WorkflowStarted StepStarted StepCompleted WorkflowError"
	if got := types(evs); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	out := x.Wait()
	if out.Status != run.StatusError || !errors.Is(out.Err(), cpErr) || !strings.Contains(out.Error, `checkpoint after step "first": disk full`) {
		t.Errorf("output: status %s, error %q (%v)", out.Status, out.Error, out.Err())
	}
	if n := calls[1].Load(); n != 0 || agentInput.Load() != nil {
		t.Errorf("steps after the failed checkpoint ran: second %d times", n)
	}
	if out.Content != "one" || resultNames(out.StepResults) != "first=one(COMPLETED)" {
		t.Errorf("output: content %q, steps %s", out.Content, resultNames(out.StepResults))
	}
}

// TestCancelledStepIsNotCheckpointed: a step that was cancelled did not complete, so
// nothing is checkpointed after it.
func TestCancelledStepIsNotCheckpointed(t *testing.T) {
	t.Parallel()
	var first atomic.Int32
	started := make(chan struct{})
	cp := &checkpoints{}
	w := &workflow.Workflow{Name: "wf", Recorder: cp, Steps: []workflow.Step{
		counted("first", "one", &first),
		workflow.FuncStep("second", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			close(started)
			<-ctx.Done()
			return workflow.StepOutput{Content: "half"}, ctx.Err()
		}),
		workflow.FuncStep("third", fn("three")),
	}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "x", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	within(t, started, "second step")
	if st, err := w.CancelRun(t.Context(), id); st != run.StatusCancelled || err != nil {
		t.Fatalf("CancelRun = %s, %v", st, err)
	}
	out := x.Wait()
	if got, _ := cp.seen(); fmt.Sprint(got) != "[first=one(COMPLETED)]" {
		t.Errorf("checkpoints = %q, want only the one after the first step", got)
	}
	if out.Status != run.StatusCancelled || resultNames(out.StepResults) != "first=one(COMPLETED) second=half(CANCELLED)" {
		t.Errorf("output: status %s, steps %s", out.Status, resultNames(out.StepResults))
	}
}

// TestCancelDuringCheckpoint: a cancel does not interrupt a checkpoint under way, and
// no step starts after it.
func TestCancelDuringCheckpoint(t *testing.T) {
	t.Parallel()
	var first, second atomic.Int32
	reg := new(run.Registry)
	id := run.NewID()
	inCheckpoint := make(chan struct{})
	var checkpointCtxErr error
	cp := &checkpoints{wait: func(ctx context.Context, x *run.Exec) {
		close(inCheckpoint)
		<-engine.EntryOf(x).Ctx.Done() // the run is cancelled while its checkpoint is written
		checkpointCtxErr = ctx.Err()
	}}
	w := &workflow.Workflow{Name: "wf", Registry: reg, Recorder: cp, Steps: []workflow.Step{
		counted("first", "one", &first),
		counted("second", "two", &second),
	}}
	x, err := w.Start(t.Context(), "x", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	within(t, inCheckpoint, "checkpoint")
	reg.RequestCancel(id, "stop")
	out := x.Wait()
	if checkpointCtxErr != nil {
		t.Errorf("the checkpoint's context ended with the run's cancel: %v", checkpointCtxErr)
	}
	if out.Status != run.StatusCancelled || out.Reason != "stop" || second.Load() != 0 {
		t.Errorf("output: status %s, reason %q; second step ran %d times", out.Status, out.Reason, second.Load())
	}
	if out.Content != "one" || resultNames(out.StepResults) != "first=one(COMPLETED)" {
		t.Errorf("output: content %q, steps %s", out.Content, resultNames(out.StepResults))
	}
}
