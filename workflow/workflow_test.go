package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30s (hang)", what)
	}
}

func collect(t *testing.T, ctx context.Context, w *workflow.Workflow, input string, opts ...run.Option) []*run.Event {
	t.Helper()
	var evs []*run.Event
	for ev, err := range w.Stream(ctx, input, opts...) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func types(evs []*run.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(string(ev.Event))
		b.WriteByte(' ')
	}
	return strings.TrimSpace(b.String())
}

func echo(text string) *agent.Agent {
	return &agent.Agent{Name: "agent " + text, Model: scripted.New(text)}
}

func fn(content string) workflow.StepFunc {
	return func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		return workflow.StepOutput{Content: content}, nil
	}
}

func TestTwoAgentSteps(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "Article Flow", Steps: []workflow.Step{
		workflow.AgentStep("research", echo("facts here"), ""),
		workflow.AgentStep("writing", echo("the story"), ""),
	}}
	id := run.NewID()
	evs := collect(t, t.Context(), w, "dragons", run.WithID(id), run.WithSessionID("s"))
	want := "WorkflowStarted StepStarted RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted " +
		"StepStarted RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted StepCompleted WorkflowCompleted"
	if got := types(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	agentRuns := map[string]bool{}
	for i, ev := range evs {
		if ev.EventIndex != i || ev.SessionID != "s" || ev.WorkflowID != "article-flow" {
			t.Errorf("event %d: %+v", i, ev)
		}
		if strings.HasPrefix(string(ev.Event), "Run") || strings.HasPrefix(string(ev.Event), "ModelRequest") {
			agentRuns[ev.RunID] = true
			if ev.WorkflowRunID != id || ev.RunID == id || ev.AgentID == "" || ev.StepName == "" || ev.StepIndex == nil {
				t.Errorf("agent event %d lacks its workflow context: %+v", i, ev)
			}
		} else if ev.RunID != id {
			t.Errorf("workflow event %d has run_id %s", i, ev.RunID)
		}
	}
	if len(agentRuns) != 2 {
		t.Errorf("agent runs: %v, want 2 distinct", agentRuns)
	}
	if ev := evs[10]; ev.StepName != "writing" || *ev.StepIndex != 1 {
		t.Errorf("second StepStarted = %+v", ev)
	}
	last := evs[len(evs)-1]
	if last.Content != "the story" || last.Detail == nil || len(last.Detail.StepResults) != 2 || last.Detail.StepResults[0].Content != "facts here" {
		t.Errorf("WorkflowCompleted = %+v", last)
	}
}

// TestStepInput checks what each step sees: the workflow input, the previous step's
// content, every earlier output, and a state shared across steps.
func TestStepInput(t *testing.T) {
	t.Parallel()
	var agentInput string
	writer := &agent.Agent{Name: "w", Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		agentInput = req.Messages[0].Content
		return scripted.Turn{Text: "written"}
	}}}
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		workflow.FuncStep("first", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			in.State.Set("count", 1)
			return workflow.StepOutput{Content: "one"}, nil
		}),
		workflow.FuncStep("second", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			n, _ := in.State.Get("count")
			first, ok := in.Output("first")
			if in.Input != "topic" || in.Previous != "one" || !ok || first.Content != "one" || n != 1 {
				return workflow.StepOutput{}, fmt.Errorf("second saw %+v", in)
			}
			return workflow.StepOutput{Content: "two"}, nil
		}),
		workflow.AgentStep("third", writer, ""),
	}}
	out, err := w.Run(t.Context(), "topic")
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "written" || agentInput != "topic\n\nPrevious step output:\ntwo" {
		t.Fatalf("content %q; the agent was given %q", out.Content, agentInput)
	}
}

func TestStopEarly(t *testing.T) {
	t.Parallel()
	ran := false
	w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{
		&workflow.Steps{Name: "group", Steps: []workflow.Step{
			workflow.FuncStep("gate", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				return workflow.StepOutput{Content: "enough", Stop: true}, nil
			}),
			workflow.FuncStep("skipped", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				ran = true
				return workflow.StepOutput{}, nil
			}),
		}},
		workflow.FuncStep("after", fn("after")),
	}}
	out, err := w.Run(t.Context(), "x")
	if err != nil || ran || out.Content != "enough" || out.Status != run.StatusCompleted {
		t.Fatalf("Run = %+v, %v; later steps ran: %t", out, err, ran)
	}
}

func TestContainers(t *testing.T) {
	t.Parallel()
	iterations := 0
	counter := workflow.FuncStep("count", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		iterations++
		return workflow.StepOutput{Content: fmt.Sprint(iterations)}, nil
	})
	a, b := workflow.FuncStep("a", fn("A")), workflow.FuncStep("b", fn("B"))
	tests := []struct {
		name    string
		step    workflow.Step
		content string
		events  []string
	}{
		{"parallel", &workflow.Parallel{Name: "both", Steps: []workflow.Step{
			workflow.FuncStep("left", fn("L")), workflow.AgentStep("right", echo("R"), ""),
		}}, "## left\nL\n\n## right\nR", []string{"ParallelExecutionStarted", "ParallelExecutionCompleted"}},
		{"condition true", &workflow.Condition{Name: "if", If: func(in *workflow.Input) bool { return true },
			Steps: []workflow.Step{workflow.FuncStep("then", fn("yes"))}}, "yes",
			[]string{"ConditionExecutionStarted", "ConditionExecutionCompleted"}},
		{"condition false", &workflow.Condition{Name: "if", If: func(in *workflow.Input) bool { return false },
			Steps: []workflow.Step{workflow.FuncStep("then", fn("yes"))}}, "prev", nil},
		{"loop until", &workflow.Loop{Name: "loop", MaxIterations: 10, Steps: []workflow.Step{counter},
			Until: func(res []run.StepResult) bool { return res[0].Content == "3" }}, "3",
			[]string{"LoopExecutionStarted", "LoopIterationStarted", "LoopIterationCompleted", "LoopExecutionCompleted"}},
		{"router", &workflow.Router{Name: "route", Choices: []workflow.Step{a, b},
			Route: func(in *workflow.Input) []workflow.Step { return []workflow.Step{b} }}, "B",
			[]string{"RouterExecutionStarted", "RouterExecutionCompleted"}},
		{"steps", &workflow.Steps{Name: "group", Steps: []workflow.Step{workflow.FuncStep("s1", fn("1")), workflow.FuncStep("s2", fn("2"))}},
			"2", []string{"StepsExecutionStarted", "StepsExecutionCompleted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{workflow.FuncStep("prev", fn("prev")), tt.step}}
			evs := collect(t, t.Context(), w, "x")
			if last := evs[len(evs)-1]; last.Event != run.EventWorkflowCompleted || last.Content != tt.content {
				t.Fatalf("last = %s %q %s, want content %q", last.Event, last.Content, last.Error, tt.content)
			}
			got := types(evs)
			for _, e := range tt.events {
				if !strings.Contains(got, e) {
					t.Errorf("no %s in %s", e, got)
				}
			}
		})
	}
	if iterations != 3 {
		t.Errorf("loop ran %d iterations, want 3", iterations)
	}
}

func TestStepFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step workflow.Step
		want string
	}{
		{"error", workflow.FuncStep("bad", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{}, errors.New("disk full")
		}), "disk full"},
		{"panic", workflow.FuncStep("bad", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			panic("oops")
		}), "oops"},
		{"panic in parallel", &workflow.Parallel{Name: "p", Steps: []workflow.Step{
			workflow.FuncStep("bad", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) { panic("oops") }),
		}}, "oops"},
		{"router off its choices", &workflow.Router{Name: "r", Choices: []workflow.Step{workflow.FuncStep("c", fn("c"))},
			Route: func(in *workflow.Input) []workflow.Step { return []workflow.Step{workflow.FuncStep("other", fn(""))} }},
			"not among its choices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{tt.step}}
			evs := collect(t, t.Context(), w, "x")
			last := evs[len(evs)-1]
			if last.Event != run.EventWorkflowError || !strings.Contains(last.Error, tt.want) {
				t.Fatalf("last = %s %q, want WorkflowError with %q", last.Event, last.Error, tt.want)
			}
			out, err := w.Run(t.Context(), "x")
			if out.Status != run.StatusError || err == nil || errors.Is(err, run.ErrCancelled) {
				t.Errorf("Run = %+v, %v", out, err)
			}
		})
	}
}

func TestInvalidWorkflows(t *testing.T) {
	t.Parallel()
	ok := workflow.FuncStep("ok", fn(""))
	tests := []struct {
		name string
		wf   *workflow.Workflow
		want string
	}{
		{"no steps", &workflow.Workflow{Name: "w"}, "no steps"},
		{"duplicate names", &workflow.Workflow{Name: "w", Steps: []workflow.Step{ok, workflow.FuncStep("ok", fn(""))}}, `duplicate step name "ok"`},
		{"nested duplicate", &workflow.Workflow{Name: "w", Steps: []workflow.Step{ok, &workflow.Parallel{Name: "p", Steps: []workflow.Step{workflow.FuncStep("ok", fn(""))}}}}, "duplicate"},
		{"neither agent nor function", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Task{Name: "t"}}}, "neither an agent nor a function"},
		{"unbounded loop", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Loop{Name: "l", Steps: []workflow.Step{ok}}}}, "no bound"},
		{"empty container", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Parallel{Name: "p"}}}, "has no steps"},
		{"nameless step", &workflow.Workflow{Name: "w", Steps: []workflow.Step{workflow.FuncStep("", fn(""))}}, "no name"},
		{"nil step", &workflow.Workflow{Name: "w", Steps: []workflow.Step{nil}}, "nil"},
		{"agent without model", &workflow.Workflow{Name: "w", Steps: []workflow.Step{workflow.AgentStep("a", &agent.Agent{Name: "x"}, "")}}, "no model"},
		{"condition without If", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Condition{Name: "c", Steps: []workflow.Step{ok}}}}, "no If"},
		{"router without Route", &workflow.Workflow{Name: "w", Steps: []workflow.Step{&workflow.Router{Name: "r", Choices: []workflow.Step{ok}}}}, "no Route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.wf.Run(t.Context(), "x")
			if !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}
