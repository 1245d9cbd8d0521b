package workflow_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/engine"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// A step that returns without error just as the cancel comes must not be followed by
// another step.
func TestNoStepStartsAfterCancel(t *testing.T) {
	t.Parallel()
	reg := new(run.Registry)
	id := run.NewID()
	started := false
	w := &workflow.Workflow{Name: "wf", Registry: reg, Steps: []workflow.Step{
		workflow.FuncStep("a", fn("first")),
		&workflow.Condition{Name: "c", If: func(*workflow.Input) bool {
			e, _ := engine.Lookup(reg, id)
			e.Cancel("stop here") // does not wait: the run goes on to return false
			return false
		}, Steps: []workflow.Step{workflow.FuncStep("b", fn("x"))}},
		workflow.FuncStep("send-email", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			started = true
			return workflow.StepOutput{Content: "email sent"}, nil
		}),
	}}
	out, err := w.Run(t.Context(), "go", run.WithID(id))
	if started || !errors.Is(err, run.ErrCancelled) || out.Content == "email sent" {
		t.Fatalf("Run = %s %q, %v; a step started after the cancel: %t", out.Status, out.Content, err, started)
	}
}

func TestCallerContextDoneBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.FuncStep("a", fn("done"))}}
	for range 200 {
		out, err := w.Run(ctx, "go")
		if out.Status != run.StatusCancelled || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run with a done context = %s, %v; want CANCELLED wrapping context.Canceled", out.Status, err)
		}
	}
}

func TestDeadlineIsTheCause(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithDeadline(t.Context(), time.Now()) // already passed
	defer cancel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.AgentStep("s", slowAgent("S", "x y"), "")}}
	_, err := w.Run(ctx, "go")
	if !errors.Is(err, run.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want a cancel caused by the deadline", err)
	}
}

// A consumer that panics inside its loop must not leave the run going.
func TestConsumerPanicCancelsRun(t *testing.T) {
	t.Parallel()
	stepCtx := make(chan context.Context, 1)
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.FuncStep("wait", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			stepCtx <- ctx
			<-ctx.Done()
			return workflow.StepOutput{}, ctx.Err()
		}),
	}}
	func() {
		defer func() { recover() }()
		for ev := range w.Stream(t.Context(), "go") {
			if ev.Event == run.EventStepStarted {
				panic("consumer bug")
			}
		}
	}()
	// The stream returned only after the run ended, so the step's context is done.
	if ctx := <-stepCtx; ctx.Err() == nil {
		t.Fatal("the run went on after its consumer panicked")
	}
}

// Cancelling an agent run inside a step by its own id keeps what it produces afterwards
// out of the stream, and ends the workflow CANCELLED: the step cannot complete.
func TestNestedCancelKeepsLaterEventsOut(t *testing.T) {
	t.Parallel()
	reg := new(run.Registry)
	toolStarted := make(chan string, 1)
	slow := tool.Func("slow", "", func(ctx context.Context, a struct{}) (string, error) {
		toolStarted <- ""
		<-ctx.Done()
		return "", ctx.Err()
	})
	a := &agent.Agent{Name: "A", Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "slow"}}}, {Text: "never"},
	}}, Tools: []tool.Tool{slow}}
	w := &workflow.Workflow{Name: "wf", Registry: reg, Steps: []workflow.Step{workflow.AgentStep("s", a, "")}}
	x, err := w.Start(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	<-toolStarted
	var agentRun string
	for _, ev := range x.Log.Events() {
		if ev.Event == run.EventRunStarted {
			agentRun = ev.RunID
		}
	}
	if st, _ := reg.Cancel(t.Context(), agentRun, "agent only"); st != run.StatusCancelled {
		t.Fatalf("cancel = %s", st)
	}
	out := x.Wait()
	evs := x.Log.Events()
	cancelledAt := -1
	for i, ev := range evs {
		if ev.Event == run.EventRunCancelled {
			cancelledAt = i
		}
		if ev.Event == run.EventToolCallError || ev.Event == run.EventToolCallCompleted {
			t.Errorf("the tool's result reached the stream after the cancel: %s", types(evs))
		}
	}
	if cancelledAt < 0 || out.Status != run.StatusCancelled || out.Reason != "agent only" {
		t.Fatalf("workflow %s (%q), events %s", out.Status, out.Reason, types(evs))
	}
}
