package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// TestContainerTimeout bounds each kind of container with a timeout while a step in
// it waits for its context: the step fails (StepError), the container and the run
// end ERROR with the timeout (never CANCELLED), and no step after it runs.
func TestContainerTimeout(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	stall := func() workflow.Step { return workflow.FuncStep("stall", waitForCtx) }
	cases := []struct {
		name string
		step workflow.Step
	}{
		{"steps", (&workflow.Steps{Name: "box", Steps: []workflow.Step{stall()}}).WithTimeout(d)},
		{"parallel", (&workflow.Parallel{Name: "box", Steps: []workflow.Step{stall(), workflow.FuncStep("quick", textStep("q"))}}).WithTimeout(d)},
		{"condition", (&workflow.Condition{Name: "box", If: func(*workflow.Input) bool { return true }, Steps: []workflow.Step{stall()}}).WithTimeout(d)},
		{"loop", (&workflow.Loop{Name: "box", MaxIterations: 3, Steps: []workflow.Step{stall()}}).WithTimeout(d)},
		{"router", func() workflow.Step {
			s := stall()
			return (&workflow.Router{Name: "box", Choices: []workflow.Step{s}, Route: func(*workflow.Input) []workflow.Step { return []workflow.Step{s} }}).WithTimeout(d)
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			after, calls := failing(0, nil, "after")
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{tc.step, workflow.FuncStep("after", after)}}
			id := run.NewID()
			x, err := w.Start(t.Context(), "go", run.WithID(id))
			if err != nil {
				t.Fatal(err)
			}
			out := x.Wait()
			err = out.Err()
			if out.Status != run.StatusError || !errors.Is(err, run.ErrTimeout) || errors.Is(err, run.ErrCancelled) {
				t.Fatalf("status %s, error %v; want ERROR with the timeout", out.Status, err)
			}
			if res := out.StepResults; len(res) != 1 || res[0].Status != run.StatusError || !strings.Contains(res[0].Error, "timed out") {
				t.Errorf("step results %+v, want the container ERROR with the timeout", res)
			}
			evs := x.Log.Events()
			if calls.Load() != 0 || countOf(evs, run.EventStepError) == 0 || countOf(evs, run.EventWorkflowError) != 1 {
				t.Errorf("after ran %d times; events %s", calls.Load(), types(evs))
			}
			oneTerminalPerRun(t, evs, id)
		})
	}
}

// TestContainerRetry retries a Steps container whose second step fails once: the
// whole container runs again from its first step, a StepRetried event between the
// attempts; every event of an attempt (the container's and its steps') carries its
// number, and the container's result the attempts made.
func TestContainerRetry(t *testing.T) {
	t.Parallel()
	first, firstCalls := failing(0, nil, "one")
	second, secondCalls := failing(1, errFlaky, "two")
	box := (&workflow.Steps{Name: "box", Steps: []workflow.Step{workflow.FuncStep("first", first), workflow.FuncStep("second", second)}}).
		WithRetry(run.RetryPolicy{Attempts: 3, Retryable: run.RetryOn(errFlaky)})
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{box}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	out := x.Wait()
	if out.Status != run.StatusCompleted || out.Content != "two" || out.StepResults[0].Attempts != 2 || len(out.StepResults[0].Steps) != 2 {
		t.Fatalf("output %s %q, step results %+v", out.Status, out.Content, out.StepResults)
	}
	if firstCalls.Load() != 2 || secondCalls.Load() != 2 {
		t.Errorf("calls: first %d, second %d; want both run twice", firstCalls.Load(), secondCalls.Load())
	}
	evs := x.Log.Events()
	want := "WorkflowStarted StepsExecutionStarted StepStarted StepCompleted StepStarted StepError StepRetried " +
		"StepsExecutionStarted StepStarted StepCompleted StepStarted StepCompleted StepsExecutionCompleted WorkflowCompleted"
	if got := types(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	attempts := []int{0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0}
	for i, ev := range evs {
		if ev.Attempt != attempts[i] {
			t.Errorf("event %d %s (step %s): attempt %d, want %d", i, ev.Event, ev.StepName, ev.Attempt, attempts[i])
		}
	}
	if !strings.Contains(evs[6].Error, errFlaky.Error()) || evs[6].StepName != "box" {
		t.Errorf("StepRetried = %+v", evs[6])
	}
	oneTerminalPerRun(t, evs, id)
}

// TestContainerRetryAfterTimeout retries a Parallel whose branch times out on its
// first attempt (retry on run.ErrTimeout): the second attempt completes.
func TestContainerRetryAfterTimeout(t *testing.T) {
	t.Parallel()
	var attempt int
	branch := func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		attempt++ // the only branch that counts; the other is quick
		if attempt == 1 {
			return waitForCtx(ctx, in)
		}
		return workflow.StepOutput{Content: fmt.Sprint("attempt ", attempt)}, nil
	}
	p := (&workflow.Parallel{Name: "fan", Steps: []workflow.Step{workflow.FuncStep("slow", branch), workflow.FuncStep("quick", textStep("q"))}}).
		WithTimeout(20 * time.Millisecond).WithRetry(run.RetryPolicy{Attempts: 2, Retryable: run.RetryOn(run.ErrTimeout)})
	out, err := (&workflow.Workflow{Name: "wf", Steps: []workflow.Step{p}}).Run(t.Context(), "go")
	if err != nil || out.StepResults[0].Attempts != 2 || !strings.Contains(out.Content, "attempt 2") {
		t.Fatalf("error %v, content %q, results %+v", err, out.Content, out.StepResults)
	}
}

// TestContainerRetryCancelled cancels a run while its container waits an hour
// before its next attempt: the run ends CANCELLED at once, not retried.
func TestContainerRetryCancelled(t *testing.T) {
	t.Parallel()
	fail, _ := failing(5, errFlaky, "")
	box := (&workflow.Steps{Name: "box", Steps: []workflow.Step{workflow.FuncStep("fail", fail)}}).
		WithRetry(run.RetryPolicy{Attempts: 3, Backoff: time.Hour, Retryable: run.RetryAny})
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{box}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range x.Stream {
		if err == nil && ev.Event == run.EventStepRetried {
			go w.CancelRun(context.Background(), id)
		}
	}
	out := x.Wait()
	if out.Status != run.StatusCancelled || out.StepResults[0].Status != run.StatusCancelled || out.StepResults[0].Attempts != 1 {
		t.Fatalf("status %s, step results %+v; want CANCELLED during the wait", out.Status, out.StepResults)
	}
}

func TestContainerPolicyInvalid(t *testing.T) {
	t.Parallel()
	ok, _ := failing(0, nil, "x")
	steps := []workflow.Step{workflow.FuncStep("s", ok)}
	for _, s := range []workflow.Step{
		(&workflow.Parallel{Name: "p", Steps: steps}).WithTimeout(-time.Second),
		(&workflow.Loop{Name: "l", MaxIterations: 1, Steps: steps}).WithRetry(run.RetryPolicy{Attempts: 2}),
		(&workflow.Steps{Name: "s2", Steps: steps}).WithRetry(run.RetryPolicy{}),
	} {
		if err := (&workflow.Workflow{Name: "wf", Steps: []workflow.Step{s}}).Validate(); !errors.Is(err, run.ErrInvalid) {
			t.Errorf("%T: Validate = %v, want ErrInvalid", s, err)
		}
	}
}
