package workflow_test

import (
	"context"
	"errors"
	"iter"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// flaky is a model whose first fails streams stream "partial " and then fail; later
// ones answer text.
type flaky struct {
	fails int
	text  string
	calls atomic.Int32
}

var errFlaky = errors.New("provider hiccup")

func (m *flaky) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	n := int(m.calls.Add(1))
	return func(yield func(model.Chunk, error) bool) {
		if n <= m.fails {
			if yield(model.Chunk{Text: "partial "}, nil) {
				yield(model.Chunk{}, errFlaky)
			}
			return
		}
		yield(model.Chunk{Text: m.text}, nil)
	}
}

// failing returns a step function that fails its first fails calls with err.
func failing(fails int, err error, content string) (workflow.StepFunc, *atomic.Int32) {
	calls := new(atomic.Int32)
	return func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		if int(calls.Add(1)) <= fails {
			return workflow.StepOutput{}, err
		}
		return workflow.StepOutput{Content: content}, nil
	}, calls
}

// waitForCtx is a step that blocks until its context ends.
func waitForCtx(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
	<-ctx.Done()
	return workflow.StepOutput{}, ctx.Err()
}

func countOf(evs []*run.Event, t run.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Event == t {
			n++
		}
	}
	return n
}

func oneTerminalPerRun(t *testing.T, evs []*run.Event, top string) {
	t.Helper()
	for runID, ts := range terminalsOf(evs) {
		if len(ts) != 1 {
			t.Errorf("run %s: terminal events %v, want one", runID, ts)
		}
	}
	if last := evs[len(evs)-1]; last.RunID != top || !last.Event.Terminal() {
		t.Errorf("stream ends with %s of %s, want the top-level run's terminal event", last.Event, last.RunID)
	}
}

// TestTimeoutIsNotACancel runs the same stalled step to a timeout and to a cancel:
// the two are told apart by status, reason, error and events.
func TestTimeoutIsNotACancel(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	steps := map[string]func() workflow.Step{
		"agent step":    func() workflow.Step { return workflow.AgentStep("s", slowAgent("S", "x y"), "").WithTimeout(d) },
		"function step": func() workflow.Step { return workflow.FuncStep("s", waitForCtx).WithTimeout(d) },
	}
	for name, step := range steps {
		t.Run(name+"/timeout", func(t *testing.T) {
			t.Parallel()
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{step()}}
			id := run.NewID()
			x, err := w.Start(t.Context(), "go", run.WithID(id))
			if err != nil {
				t.Fatal(err)
			}
			out := x.Wait()
			evs := x.Log.Events()
			if out.Status != run.StatusError || out.Reason != "" || !errors.Is(out.Err(), run.ErrTimeout) || errors.Is(out.Err(), run.ErrCancelled) {
				t.Fatalf("output = %s (reason %q, err %v), want ERROR matching run.ErrTimeout", out.Status, out.Reason, out.Err())
			}
			if res := out.StepResults[0]; out.Error != `step "s": timed out after 20ms` || res.Status != run.StatusError || res.Error != "timed out after 20ms" {
				t.Errorf("error %q, step result %+v; want the step timed out after 20ms", out.Error, res)
			}
			for _, ev := range evs {
				if ev.Event == run.EventRunCancelled || ev.Event == run.EventWorkflowCancelled || ev.Reason != "" {
					t.Errorf("a timeout emitted a cancel: %s (reason %q)", ev.Event, ev.Reason)
				}
				if ev.Event == run.EventRunError && ev.Error != "timed out after 20ms" {
					t.Errorf("agent run's error = %q", ev.Error)
				}
			}
			if countOf(evs, run.EventStepError) != 1 || evs[len(evs)-1].Event != run.EventWorkflowError {
				t.Errorf("events: %s; want one StepError, WorkflowError last", types(evs))
			}
			oneTerminalPerRun(t, evs, id)
		})
		t.Run(name+"/cancel", func(t *testing.T) {
			t.Parallel()
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{step().(*workflow.Task).WithTimeout(0)}}
			id := run.NewID()
			evs := streamUntil(t, t.Context(), w, id, func(ev *run.Event) bool { return ev.Event == run.EventStepStarted },
				func() { w.CancelRun(context.Background(), id) })
			last := evs[len(evs)-1]
			if last.Event != run.EventWorkflowCancelled || last.Reason != run.ReasonRequested || last.Error != "" {
				t.Fatalf("last = %s (reason %q, error %q), want WorkflowCancelled", last.Event, last.Reason, last.Error)
			}
			if countOf(evs, run.EventStepError) != 0 || countOf(evs, run.EventRunError) != 0 {
				t.Errorf("a cancel emitted errors: %s", types(evs))
			}
			oneTerminalPerRun(t, evs, id)
		})
	}
}

// TestStepRetry covers the retry policy's cases: which errors are retried, how many
// attempts are made, and what the events and the step result say.
func TestStepRetry(t *testing.T) {
	t.Parallel()
	errOther := errors.New("bad input")
	tests := []struct {
		name      string
		fails     int
		err       error
		policy    run.RetryPolicy
		timeout   time.Duration
		wantSt    run.Status
		wantTries int
	}{
		{"succeeds on the third attempt", 2, errFlaky, run.RetryPolicy{Attempts: 3, Retryable: run.RetryAny}, 0, run.StatusCompleted, 3},
		{"attempts run out", 5, errFlaky, run.RetryPolicy{Attempts: 3, Retryable: run.RetryAny}, 0, run.StatusError, 3},
		{"error not retryable", 1, errOther, run.RetryPolicy{Attempts: 3, Retryable: run.RetryOn(errFlaky)}, 0, run.StatusError, 1},
		{"retryable error matched", 1, errFlaky, run.RetryPolicy{Attempts: 3, Retryable: run.RetryOn(errFlaky)}, 0, run.StatusCompleted, 2},
		{"one attempt", 1, errFlaky, run.RetryPolicy{Attempts: 1}, 0, run.StatusError, 1},
		{"cancel never retried", 1, run.ErrCancelled, run.RetryPolicy{Attempts: 3, Retryable: run.RetryAny}, 0, run.StatusCancelled, 1},
		{"backoff", 2, errFlaky, run.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Retryable: run.RetryAny}, 0, run.StatusCompleted, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, calls := failing(tt.fails, tt.err, "done")
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
				workflow.FuncStep("flaky", f).WithRetry(tt.policy).WithTimeout(tt.timeout),
			}}
			id := run.NewID()
			x, err := w.Start(t.Context(), "go", run.WithID(id))
			if err != nil {
				t.Fatal(err)
			}
			out := x.Wait()
			evs := x.Log.Events()
			last := evs[len(evs)-1]
			wantLast := map[run.Status]run.EventType{run.StatusCompleted: run.EventWorkflowCompleted, run.StatusError: run.EventWorkflowError, run.StatusCancelled: run.EventWorkflowCancelled}[tt.wantSt]
			if last.Event != wantLast {
				t.Fatalf("last event %s, want %s: %s", last.Event, wantLast, types(evs))
			}
			if int(calls.Load()) != tt.wantTries {
				t.Errorf("%d attempts, want %d", calls.Load(), tt.wantTries)
			}
			if got := countOf(evs, run.EventStepRetried); got != tt.wantTries-1 {
				t.Errorf("%d StepRetried events, want %d", got, tt.wantTries-1)
			}
			if countOf(evs, run.EventStepStarted) != 1 {
				t.Errorf("StepStarted events: %s", types(evs))
			}
			retried := 0
			for _, ev := range evs {
				switch ev.Event {
				case run.EventStepRetried:
					retried++
					if ev.Attempt != retried || ev.Error != tt.err.Error() {
						t.Errorf("StepRetried: attempt %d error %q", ev.Attempt, ev.Error)
					}
				case run.EventStepCompleted, run.EventStepError:
					if ev.Attempt != tt.wantTries {
						t.Errorf("%s: attempt %d, want %d", ev.Event, ev.Attempt, tt.wantTries)
					}
				}
			}
			if res := out.StepResults[0]; res.Attempts != tt.wantTries || res.Status != tt.wantSt {
				t.Errorf("step result %+v, want %d attempts, %s", res, tt.wantTries, tt.wantSt)
			}
			oneTerminalPerRun(t, evs, id)
		})
	}
}

// TestAgentStepRetryKeepsFailedAttempt retries an agent step whose model fails once
// mid-stream: the failed attempt's events stay in the stream, marked with its
// attempt, its agent run has one terminal event (RunError), and the retry is a new
// agent run.
func TestAgentStepRetryKeepsFailedAttempt(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "writer", Model: &flaky{fails: 1, text: "the story"}}
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.AgentStep("write", a, "").WithRetry(run.RetryPolicy{Attempts: 2, Retryable: run.RetryOn(errFlaky)}),
	}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	out := x.Wait()
	evs := x.Log.Events()
	want := "WorkflowStarted StepStarted RunStarted ModelRequestStarted RunContent RunError StepRetried " +
		"RunStarted ModelRequestStarted RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted WorkflowCompleted"
	if got := types(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	if out.Status != run.StatusCompleted || out.Content != "the story" || out.StepResults[0].Attempts != 2 {
		t.Fatalf("output = %s %q, step results %+v", out.Status, out.Content, out.StepResults)
	}
	attempts := []int{0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0}
	for i, ev := range evs {
		if ev.Attempt != attempts[i] || ev.EventIndex != i {
			t.Errorf("event %d %s: attempt %d index %d, want attempt %d", i, ev.Event, ev.Attempt, ev.EventIndex, attempts[i])
		}
	}
	if evs[2].RunID == evs[7].RunID || evs[2].RunID == id {
		t.Errorf("the retry reused a run id: %s, %s", evs[2].RunID, evs[7].RunID)
	}
	if !strings.Contains(evs[5].Error, errFlaky.Error()) || !strings.Contains(evs[6].Error, errFlaky.Error()) {
		t.Errorf("RunError %q, StepRetried %q: want the model's error", evs[5].Error, evs[6].Error)
	}
	oneTerminalPerRun(t, evs, id)
}

// TestBackoffIsCancelledAtOnce cancels, or times out, a run while a step waits an
// hour before its next attempt: the run ends at once, CANCELLED for a cancel and
// ERROR for the workflow's deadline, and no attempt runs again.
func TestBackoffIsCancelledAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		timeout  time.Duration // the workflow's
		cancel   bool
		wantLast run.EventType
		wantStep run.Status
	}{
		{"cancel", 0, true, run.EventWorkflowCancelled, run.StatusCancelled},
		{"workflow deadline", 50 * time.Millisecond, false, run.EventWorkflowError, run.StatusError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, calls := failing(10, errFlaky, "never")
			w := &workflow.Workflow{Name: "wf", Timeout: tt.timeout, Steps: []workflow.Step{
				workflow.FuncStep("flaky", f).WithRetry(run.RetryPolicy{Attempts: 5, Backoff: time.Hour, Retryable: run.RetryAny}),
			}}
			id := run.NewID()
			evs := streamUntil(t, t.Context(), w, id, func(ev *run.Event) bool { return tt.cancel && ev.Event == run.EventStepRetried },
				func() { w.CancelRun(context.Background(), id) })
			last := evs[len(evs)-1]
			if last.Event != tt.wantLast {
				t.Fatalf("last = %s, want %s: %s", last.Event, tt.wantLast, types(evs))
			}
			if calls.Load() != 1 {
				t.Errorf("%d attempts, want 1", calls.Load())
			}
			if tt.cancel && (last.Reason != run.ReasonRequested || countOf(evs, run.EventStepError) != 0) {
				t.Errorf("cancel: reason %q, events %s", last.Reason, types(evs))
			}
			if !tt.cancel && (!strings.Contains(last.Error, `workflow "wf" timed out after 50ms`) || countOf(evs, run.EventStepError) != 1) {
				t.Errorf("deadline: error %q, events %s", last.Error, types(evs))
			}
			oneTerminalPerRun(t, evs, id)
		})
	}
}

// TestWorkflowTimeout: a workflow's deadline ends the run ERROR, the running step
// and its agent's run with it, and keeps what the finished steps produced.
func TestWorkflowTimeout(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Timeout: 200 * time.Millisecond, Steps: []workflow.Step{
		workflow.FuncStep("first", fn("first output")),
		workflow.AgentStep("slow", slowAgent("S", "x y"), ""),
		workflow.FuncStep("never", fn("never")),
	}}
	id := run.NewID()
	x, err := w.Start(t.Context(), "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	out := x.Wait()
	if out.Status != run.StatusError || !errors.Is(out.Err(), run.ErrTimeout) || out.Reason != "" {
		t.Fatalf("output = %s (%v, reason %q), want ERROR matching run.ErrTimeout", out.Status, out.Err(), out.Reason)
	}
	if want := `step "slow": workflow "wf" timed out after 200ms`; out.Error != want {
		t.Errorf("error = %q, want %q", out.Error, want)
	}
	if len(out.StepResults) != 2 || out.StepResults[0].Content != "first output" || out.StepResults[1].Status != run.StatusError {
		t.Errorf("step results = %+v", out.StepResults)
	}
	evs := x.Log.Events()
	var agentEnd *run.Event
	for _, ev := range evs {
		if ev.Event.Terminal() && ev.RunID != id {
			agentEnd = ev
		}
	}
	if agentEnd == nil || agentEnd.Event != run.EventRunError || agentEnd.Error != `workflow "wf" timed out after 200ms` {
		t.Errorf("agent run ended with %+v, want RunError with the workflow's timeout", agentEnd)
	}
	oneTerminalPerRun(t, evs, id)
}

// TestParallelSiblingOfATimeoutIsCancelled: when one branch times out, the others
// are cancelled because of it; they did not time out themselves.
func TestParallelSiblingOfATimeoutIsCancelled(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		&workflow.Parallel{Name: "p", Steps: []workflow.Step{
			workflow.FuncStep("short", waitForCtx).WithTimeout(20 * time.Millisecond),
			workflow.AgentStep("long", slowAgent("L", "a b"), ""),
		}},
	}}
	out, err := w.Run(t.Context(), "go")
	if out.Status != run.StatusError || !errors.Is(err, run.ErrTimeout) {
		t.Fatalf("Run = %s, %v; want ERROR from the branch's timeout", out.Status, err)
	}
	branches := out.StepResults[0].Steps
	if branches[0].Status != run.StatusError || branches[1].Status != run.StatusCancelled {
		t.Errorf("branches = %+v; want the timed out one ERROR, its sibling CANCELLED", branches)
	}
}

func TestInvalidPolicies(t *testing.T) {
	t.Parallel()
	step := func() *workflow.Task { return workflow.FuncStep("s", fn("")) }
	tests := []struct {
		name string
		wf   *workflow.Workflow
		want string
	}{
		{"negative step timeout", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithTimeout(-time.Second)}}, "negative timeout"},
		{"zero attempts", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{})}}, "Attempts is 0"},
		{"negative attempts", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{Attempts: -1})}}, "Attempts is -1"},
		{"negative backoff", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{Attempts: 2, Backoff: -1, Retryable: run.RetryAny})}}, "negative backoff"},
		{"cap below backoff", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{Attempts: 2, Backoff: time.Second, MaxBackoff: time.Millisecond, Retryable: run.RetryAny})}}, "below Backoff"},
		{"multiplier below 1", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{Attempts: 2, Multiplier: 0.5, Retryable: run.RetryAny})}}, "Multiplier"},
		{"retries without Retryable", &workflow.Workflow{Name: "w", Steps: []workflow.Step{step().WithRetry(run.RetryPolicy{Attempts: 2})}}, "no Retryable"},
		{"negative workflow timeout", &workflow.Workflow{Name: "w", Timeout: -time.Second, Steps: []workflow.Step{step()}}, "negative timeout"},
		{"nested step", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Parallel{Name: "p", Steps: []workflow.Step{step().WithTimeout(-1)}}}}, "negative timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x, err := tt.wf.Start(t.Context(), "x")
			if x != nil || !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start = %v, %v; want no run and ErrInvalid mentioning %q", x, err, tt.want)
			}
		})
	}
}

// The zero policies leave a step's events and result as they were: no attempt
// field, no attempts count.
func TestNoPolicyNoAttempts(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.AgentStep("s", echo("hi"), "")}}
	out, err := w.Run(t.Context(), "go")
	if err != nil || out.StepResults[0].Attempts != 0 {
		t.Fatalf("Run = %+v, %v", out.StepResults, err)
	}
	for _, ev := range collect(t, t.Context(), w, "go") {
		if ev.Attempt != 0 {
			t.Errorf("%s carries attempt %d", ev.Event, ev.Attempt)
		}
	}
}

func TestDescribePolicies(t *testing.T) {
	t.Parallel()
	infos := workflow.Describe([]workflow.Step{
		workflow.FuncStep("plain", fn("")),
		workflow.FuncStep("bounded", fn("")).WithTimeout(1500 * time.Millisecond).WithRetry(run.RetryPolicy{Attempts: 3, Retryable: run.RetryAny}),
		(&workflow.Parallel{Name: "fan", Steps: []workflow.Step{workflow.FuncStep("branch", fn(""))}}).
			WithTimeout(time.Minute).WithRetry(run.RetryPolicy{Attempts: 2, Retryable: run.RetryAny}),
	})
	if infos[0].MaxRetries != 0 || infos[0].TimeoutSeconds != 0 || infos[1].MaxRetries != 2 || infos[1].TimeoutSeconds != 1.5 ||
		infos[2].MaxRetries != 1 || infos[2].TimeoutSeconds != 60 || infos[2].Steps[0].TimeoutSeconds != 0 {
		t.Errorf("infos = %+v", infos)
	}
}
