package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

type plan struct {
	Title string `json:"title"`
	Steps int    `json:"steps"`
}

// mismatched cannot hold a plan: its title is a number.
type mismatched struct {
	Title int `json:"title"`
}

const planSchema = `{"type":"object","properties":{"title":{"type":"string"},"steps":{"type":"integer"}},"required":["title","steps"],"additionalProperties":false}`

// planner is an agent step whose scripted model answers a plan under an output schema.
func planner() *workflow.Task {
	a := &agent.Agent{Name: "planner", Model: scripted.New(`{"title": "Dragons", "steps": 3}`),
		Output: agent.OutputJSON("plan", []byte(planSchema))}
	return workflow.AgentStep("planner", a, "")
}

// valueStep is a function step that returns v as its value.
func valueStep(name string, v any) *workflow.Task {
	return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		return workflow.StepOutput{Value: v}, nil
	})
}

// decodeStep is a function step that decodes the previous step's output into a T and
// returns it formatted.
func decodeStep[T any](name string) *workflow.Task {
	return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		v, err := workflow.Previous[T](in)
		if err != nil {
			return workflow.StepOutput{}, err
		}
		return workflow.StepOutput{Content: fmt.Sprintf("%+v", v)}, nil
	})
}

func TestStepValues(t *testing.T) {
	t.Parallel()
	shared := &plan{Title: "shared", Steps: 1}
	var agentInput atomic.Value
	reader := &agent.Agent{Name: "reader", Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		agentInput.Store(req.Messages[len(req.Messages)-1].Content)
		return scripted.Turn{Text: "read"}
	}}}
	tests := []struct {
		name      string
		steps     []workflow.Step
		want      string // the run's content
		wantTypes string // each top-level step's content type
		wantErr   error
		errText   string
	}{
		{name: "structured agent step to function step",
			steps: []workflow.Step{planner(), workflow.FuncStep("use", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				p, err := workflow.Previous[plan](in)
				if err != nil {
					return workflow.StepOutput{}, err
				}
				q, err := workflow.StepValue[plan](in, "planner")
				if err != nil || q != p {
					return workflow.StepOutput{}, fmt.Errorf("StepValue = %+v, %v; Previous = %+v", q, err, p)
				}
				raw, ok := in.PreviousJSON()
				return workflow.StepOutput{Content: fmt.Sprintf("%s/%d %s %t %s", p.Title, p.Steps, raw, ok, in.PreviousType)}, nil
			})},
			want: `Dragons/3 {"title":"Dragons","steps":3} true plan`, wantTypes: "plan,,"},
		{name: "function step value to function step",
			steps: []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2}), decodeStep[plan]("use")},
			want:  "{Title:Go Steps:2}", wantTypes: "plan,,"},
		{name: "the value itself, not a copy",
			steps: []workflow.Step{valueStep("make", shared), workflow.FuncStep("use", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				p, err := workflow.Previous[*plan](in)
				return workflow.StepOutput{Content: fmt.Sprint(p == shared)}, err
			})},
			want: "true", wantTypes: "plan,,"},
		{name: "content already JSON, with its type",
			steps: []workflow.Step{workflow.FuncStep("raw", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				return workflow.StepOutput{Content: `{"title":"Raw","steps":5}`, ContentType: "plan"}, nil
			}), decodeStep[plan]("use")},
			want: "{Title:Raw Steps:5}", wantTypes: "plan,,"},
		{name: "value through a container",
			steps: []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2}), &workflow.Steps{Name: "group", Steps: []workflow.Step{decodeStep[plan]("use")}}},
			want:  "{Title:Go Steps:2}", wantTypes: "plan,,"},
		{name: "unnamed type, explicit content type",
			steps: []workflow.Step{
				valueStep("anon", map[string]int{"steps": 4}),
				workflow.FuncStep("typed", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
					m, err := workflow.Previous[map[string]int](in)
					return workflow.StepOutput{Value: plan{Steps: m["steps"]}, ContentType: "Plan"}, err
				}),
				decodeStep[plan]("use"),
			},
			want: "{Title: Steps:4}", wantTypes: "json,Plan,,"},
		{name: "function step value to agent step",
			steps: []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2}), workflow.AgentStep("read", reader, "")},
			want:  "read", wantTypes: "plan,,"},
		{name: "type mismatch",
			steps:   []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2}), decodeStep[mismatched]("use")},
			wantErr: workflow.ErrValueType, errText: `step "use": previous step: workflow: step output does not match the type: its plan output does not decode into workflow_test.mismatched`},
		{name: "structured agent output, type mismatch",
			steps:   []workflow.Step{planner(), decodeStep[mismatched]("use")},
			wantErr: workflow.ErrValueType, errText: "does not decode into workflow_test.mismatched"},
		{name: "text is no value",
			steps: []workflow.Step{workflow.FuncStep("text", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				return workflow.StepOutput{Content: `{"title":"x"}`}, nil
			}), decodeStep[plan]("use")},
			wantErr: workflow.ErrNoValue, errText: `step "use": previous step: workflow: step has no structured output: its content is text`},
		{name: "parallel steps join into text",
			steps: []workflow.Step{
				&workflow.Parallel{Name: "both", Steps: []workflow.Step{valueStep("a", plan{Title: "a"}), valueStep("b", plan{Title: "b"})}},
				decodeStep[plan]("use"),
			},
			wantErr: workflow.ErrNoValue, errText: "its content is text"},
		{name: "first step has no value",
			steps:   []workflow.Step{decodeStep[plan]("use")},
			wantErr: workflow.ErrNoValue},
		{name: "no such step",
			steps: []workflow.Step{workflow.FuncStep("use", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				_, err := workflow.StepValue[plan](in, "nowhere")
				return workflow.StepOutput{}, err
			})},
			wantErr: workflow.ErrNoValue, errText: `step "nowhere": workflow: step has no structured output: no such step finished`},
		{name: "both content and value",
			steps: []workflow.Step{workflow.FuncStep("both", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
				return workflow.StepOutput{Content: "text", Value: plan{}}, nil
			})},
			errText: `step "both": step output has both Content and Value`},
		{name: "value that does not marshal",
			steps:   []workflow.Step{valueStep("chan", make(chan int))},
			errText: `step "chan": step output value: json: unsupported type: chan int`},
	}
	for _, tt := range tests {
		w := &workflow.Workflow{Name: "values", Steps: tt.steps}
		out, err := w.Run(t.Context(), "go")
		if tt.wantErr != nil || tt.errText != "" {
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("%s: Run error = %v, want %v with %q", tt.name, err, tt.wantErr, tt.errText)
			}
			if last := out.StepResults[len(out.StepResults)-1]; last.Status != run.StatusError {
				t.Errorf("%s: last step %s, want %s", tt.name, last.Status, run.StatusError)
			}
			continue
		}
		if err != nil || out.Content != tt.want {
			t.Errorf("%s: Run = %q, %v; want %q", tt.name, out.Content, err, tt.want)
			continue
		}
		var types strings.Builder
		for _, res := range out.StepResults {
			fmt.Fprintf(&types, "%s,", res.ContentType)
		}
		if types.String() != tt.wantTypes {
			t.Errorf("%s: content types %q, want %q", tt.name, types.String(), tt.wantTypes)
		}
	}
	if in, _ := agentInput.Load().(string); !strings.Contains(in, "Previous step output:\n"+`{"title":"Go","steps":2}`) {
		t.Errorf("agent step input = %q, want the value's JSON", in)
	}
}

func TestStepCompletedCarriesContentType(t *testing.T) {
	t.Parallel()
	w := &workflow.Workflow{Name: "values", Steps: []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2})}}
	var got []string
	for ev, err := range w.Stream(t.Context(), "go") {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event == run.EventStepCompleted {
			b, _ := ev.AppendJSON(nil)
			got = append(got, string(b))
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], `"content":{"title":"Go","steps":2}`) || !strings.Contains(got[0], `"content_type":"plan"`) {
		t.Errorf("StepCompleted events = %q, want the value's JSON as content, of type plan", got)
	}
}

// keptSteps is a Recorder and Checkpointer that keeps, as JSON, the step results of
// the last checkpoint, as a store does.
type keptSteps struct {
	mu   sync.Mutex
	json []byte
}

func (k *keptSteps) Begin(ctx context.Context, x *run.Exec) error { return nil }
func (k *keptSteps) End(ctx context.Context, x *run.Exec) error   { return nil }
func (k *keptSteps) Checkpoint(ctx context.Context, x *run.Exec, steps []run.StepResult) error {
	b, err := json.Marshal(steps)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.json = b
	return err
}

func (k *keptSteps) steps(t *testing.T) []run.StepResult {
	k.mu.Lock()
	defer k.mu.Unlock()
	var steps []run.StepResult
	if err := json.Unmarshal(k.json, &steps); err != nil {
		t.Fatal(err)
	}
	return steps
}

func TestResumeAfterStructuredStep(t *testing.T) {
	t.Parallel()
	var used atomic.Int32
	use := workflow.FuncStep("use", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		if used.Add(1) == 1 {
			return workflow.StepOutput{}, errors.New("process died") // the run to resume
		}
		p, err := workflow.Previous[plan](in)
		if err != nil {
			return workflow.StepOutput{}, err
		}
		q, err := workflow.StepValue[plan](in, "planner")
		return workflow.StepOutput{Content: fmt.Sprintf("%+v %+v", p, q)}, err
	})
	tests := []struct {
		name  string
		first workflow.Step
	}{
		{"agent step", planner()},
		{"function step", valueStep("planner", plan{Title: "Dragons", Steps: 3})},
	}
	for _, tt := range tests {
		used.Store(0)
		kept := &keptSteps{}
		w := &workflow.Workflow{Name: "resumed", Recorder: kept, Steps: []workflow.Step{tt.first, use}}
		if _, err := w.Run(t.Context(), "go"); err == nil {
			t.Fatalf("%s: first run did not fail", tt.name)
		}
		done := kept.steps(t)
		if len(done) != 1 || done[0].ContentType != "plan" {
			t.Fatalf("%s: checkpointed %+v, want the planner's structured result", tt.name, done)
		}
		w.Recorder = nil
		out, err := w.Run(t.Context(), "go", run.WithResume(&run.Resume{NextEvent: 10, Steps: done}))
		if want := "{Title:Dragons Steps:3} {Title:Dragons Steps:3}"; err != nil || out.Content != want {
			t.Errorf("%s: resumed Run = %q, %v; want %q", tt.name, out.Content, err, want)
		}
		if got := out.StepResults[0].ContentType; got != "plan" {
			t.Errorf("%s: resumed run's first step content type %q, want plan", tt.name, got)
		}
	}
}

// TestStructuredWorkflowOutput: a workflow whose last step is structured has that
// step's JSON as its content, typed as it, on its output and its terminal event (a
// JSON object on the wire, as an agent's structured output); a text last step
// leaves the run's content text.
func TestStructuredWorkflowOutput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		steps    []workflow.Step
		wantType string
	}{
		{"function value", []workflow.Step{valueStep("make", plan{Title: "Go", Steps: 2})}, "plan"},
		{"agent schema", []workflow.Step{workflow.FuncStep("first", textStep("x")), planner()}, "plan"},
		{"in a container", []workflow.Step{&workflow.Steps{Name: "group", Steps: []workflow.Step{planner()}}}, "plan"},
		{"text after structured", []workflow.Step{planner(), workflow.FuncStep("say", textStep(`{"looks":"like json"}`))}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := &workflow.Workflow{Name: "wf", Steps: tc.steps}
			x, err := w.Start(t.Context(), "go")
			if err != nil {
				t.Fatal(err)
			}
			out := x.Wait()
			if out.Status != run.StatusCompleted || out.ContentType != tc.wantType {
				t.Fatalf("output %s, content %q of type %q; want type %q", out.Status, out.Content, out.ContentType, tc.wantType)
			}
			evs := x.Log.Events()
			b, _ := evs[len(evs)-1].AppendJSON(nil)
			raw, structured := out.StructuredContent()
			if tc.wantType == "" {
				if structured || !strings.Contains(string(b), `"content":"{\"looks\"`) {
					t.Errorf("text content written as JSON: %s", b)
				}
				return
			}
			var v plan
			if !structured || json.Unmarshal(raw, &v) != nil || v.Title == "" ||
				!strings.Contains(string(b), `"content":{"title":`) || !strings.Contains(string(b), `"content_type":"plan"`) {
				t.Errorf("structured content %s (%v); terminal event %s", raw, structured, b)
			}
		})
	}
}

// textStep returns a function step's work that answers text.
func textStep(text string) workflow.StepFunc {
	return func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
		return workflow.StepOutput{Content: text}, nil
	}
}
