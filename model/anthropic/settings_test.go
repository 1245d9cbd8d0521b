package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/tool"
)

var weatherTool = tool.Definition{Name: "get_weather", Description: "Get weather", Parameters: json.RawMessage(`{"type":"object","properties":{"location":{"type":"string"}}}`)}

func ask(s model.Settings) *model.Request {
	return &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "weather?"}}, Tools: []tool.Definition{weatherTool}, Settings: s}
}

// body decodes the body of a recorded request.
func body(t *testing.T, r *anthropictest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSettingsOnTheWire(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  model.Settings
		want map[string]any
	}{
		{"sampling", model.Settings{Temperature: model.Float(0.4), TopP: model.Float(0.8), MaxTokens: 300, Stop: []string{"END"},
			ToolChoice: "get_weather", ParallelToolCalls: model.Bool(false), Extra: map[string]any{"metadata": map[string]any{"user_id": "u1"}}},
			map[string]any{"temperature": 0.4, "top_p": 0.8, "max_tokens": 300.0, "stop_sequences": []any{"END"},
				"tool_choice": map[string]any{"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
				"metadata":    map[string]any{"user_id": "u1"}, "thinking": nil}},
		{"required", model.Settings{ToolChoice: model.ToolChoiceRequired},
			map[string]any{"tool_choice": map[string]any{"type": "any"}, "max_tokens": float64(anthropic.DefaultMaxTokens)}},
		{"no parallel calls", model.Settings{ParallelToolCalls: model.Bool(false)},
			map[string]any{"tool_choice": map[string]any{"type": "auto", "disable_parallel_tool_use": true}}},
		{"none", model.Settings{ToolChoice: model.ToolChoiceNone, ParallelToolCalls: model.Bool(false)},
			map[string]any{"tool_choice": map[string]any{"type": "none"}}},
		{"thinking", model.Settings{ReasoningEffort: "high"},
			map[string]any{"thinking": map[string]any{"type": "enabled", "budget_tokens": 16384.0}, "max_tokens": float64(16384 + anthropic.DefaultMaxTokens), "temperature": nil}},
		{"thinking within max_tokens", model.Settings{ReasoningEffort: "minimal", MaxTokens: 2000, TopP: model.Float(0.95)},
			map[string]any{"thinking": map[string]any{"type": "enabled", "budget_tokens": 1024.0}, "max_tokens": 2000.0, "top_p": 0.95}},
		{"thinking off", model.Settings{ReasoningEffort: "none"}, map[string]any{"thinking": nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, anthropictest.Text("ok"))
			if r := collect(t.Context(), newModel(srv), ask(c.set)); r.err != nil {
				t.Fatal(r.err)
			}
			b := body(t, srv.Requests()[0])
			for k, want := range c.want {
				if got := b[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

func TestSettingsRefusedBeforeTheRequest(t *testing.T) {
	t.Parallel()
	output := &model.OutputSchema{Name: "Answer", Schema: json.RawMessage(`{"type":"object","properties":{}}`)}
	cases := []struct {
		name   string
		set    model.Settings
		output *model.OutputSchema
		opts   []anthropic.Option
		want   error
	}{
		{"seed", model.Settings{Seed: model.Int(1)}, nil, nil, model.ErrUnsupported},
		{"temperature above 1", model.Settings{Temperature: model.Float(1.5)}, nil, nil, model.ErrUnsupported},
		{"temperature on 2026-10-21", model.Settings{Temperature: model.Float(0.5)}, nil, []anthropic.Option{anthropic.WithAPIVersion(anthropic.APIVersion20261021)}, model.ErrUnsupported},
		{"top_p on 2026-10-21", model.Settings{TopP: model.Float(0.5)}, nil, []anthropic.Option{anthropic.WithAPIVersion(anthropic.APIVersion20261021)}, model.ErrUnsupported},
		{"thinking and temperature", model.Settings{ReasoningEffort: "low", Temperature: model.Float(0.5)}, nil, nil, model.ErrUnsupported},
		{"thinking and top_p", model.Settings{ReasoningEffort: "low", TopP: model.Float(0.5)}, nil, nil, model.ErrUnsupported},
		{"thinking and a forced tool", model.Settings{ReasoningEffort: "low", ToolChoice: model.ToolChoiceRequired}, nil, nil, model.ErrUnsupported},
		{"thinking and a named tool", model.Settings{ReasoningEffort: "low", ToolChoice: "get_weather"}, nil, nil, model.ErrUnsupported},
		{"thinking and structured output", model.Settings{ReasoningEffort: "low"}, output, nil, model.ErrUnsupported},
		{"thinking budget above max_tokens", model.Settings{ReasoningEffort: "medium", MaxTokens: 4000}, nil, nil, model.ErrUnsupported},
		{"output and tool_choice none", model.Settings{ToolChoice: model.ToolChoiceNone}, output, nil, model.ErrUnsupported},
		{"output named like a tool", model.Settings{}, &model.OutputSchema{Name: "get_weather", Schema: output.Schema}, nil, model.ErrUnsupported},
		{"unknown tool", model.Settings{ToolChoice: "get_time"}, nil, nil, model.ErrInvalidSettings},
		{"extra replacing a field", model.Settings{Extra: map[string]any{"max_tokens": 5}}, nil, nil, model.ErrInvalidSettings},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			req := ask(c.set)
			req.Output = c.output
			m := newModel(srv, c.opts...)
			r := collect(t.Context(), m, req)
			if !errors.Is(r.err, c.want) || len(srv.Requests()) != 0 {
				t.Fatalf("error %v (want %v), %d requests", r.err, c.want, len(srv.Requests()))
			}
			if c.name != "extra replacing a field" {
				if err := m.Check(req); !errors.Is(err, c.want) {
					t.Errorf("Check = %v", err)
				}
			}
		})
	}
}

// TestThinkingReplayed: with extended thinking, the reasoning streams as Reasoning
// chunks, and the signed thinking block goes back before the tool call in the next
// request, which the fake (as the API) requires.
func TestThinkingReplayed(t *testing.T) {
	t.Parallel()
	call := anthropictest.NewStream(anthropictest.MessageID, anthropictest.Model, 11).
		ThinkingBlock("sig-123", "The user wants ", "the weather.").
		ToolUseBlock("toolu_1", "get_weather", `{"location":"Paris"}`).End("tool_use", 40).Reply()
	srv := newServer(t, call, anthropictest.Text("Sunny."))
	type args struct {
		Location string `json:"location"`
	}
	weather := tool.Func("get_weather", "Get weather", func(ctx context.Context, a args) (string, error) { return "sunny", nil })
	a := &agent.Agent{Name: "w", Model: newModel(srv), Tools: []tool.Tool{weather}, Settings: &model.Settings{ReasoningEffort: "low"}}
	var reasoning strings.Builder
	for ev, err := range a.Stream(t.Context(), "weather in Paris?") {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Detail != nil && ev.Event == "ReasoningContentDelta" {
			reasoning.WriteString(ev.Detail.ReasoningContent)
		}
		if ev.Event.Terminal() && ev.Event != "RunCompleted" {
			t.Fatalf("run ended %s: %s", ev.Event, ev.Error)
		}
	}
	if reasoning.String() != "The user wants the weather." {
		t.Errorf("reasoning = %q", reasoning.String())
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	first := reqs[1].Params.Messages[1].Content[0]
	if first.Type != "thinking" || first.Thinking != "The user wants the weather." || first.Signature != "sig-123" {
		t.Errorf("replayed block = %+v", first)
	}
}

type verdict struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// TestStructuredOutputForcedTool: an output schema is a tool the model is made to
// call, alone (tool_choice tool) or beside the agent's tools (tool_choice any); its
// input comes back as the answer's text.
func TestStructuredOutputForcedTool(t *testing.T) {
	t.Parallel()
	for _, withTools := range []bool{false, true} {
		t.Run(fmt.Sprint("tools=", withTools), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t,
				anthropictest.ToolUse("toolu_1", "verdict", `{"ok": "yes"}`),
				anthropictest.ToolUse("toolu_2", "verdict", `{"ok": true,`, ` "reason": "fine"}`))
			a := &agent.Agent{Name: "judge", Model: newModel(srv), Output: agent.Output[verdict]()}
			if withTools {
				a.Tools = []tool.Tool{tool.Func("get_weather", "Get weather", func(ctx context.Context, a struct{}) (string, error) { return "", nil })}
			}
			out, err := a.Run(t.Context(), "judge")
			if err != nil {
				t.Fatal(err)
			}
			v, err := agent.Decode[verdict](out)
			if err != nil || !v.OK || v.Reason != "fine" {
				t.Fatalf("verdict %+v, %v", v, err)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2 (one retry)", len(reqs))
			}
			p := reqs[0].Params
			last := p.Tools[len(p.Tools)-1]
			if last.Name != "verdict" || !strings.Contains(string(last.InputSchema), `"reason"`) {
				t.Errorf("output tool = %+v", last)
			}
			want := map[string]any{"type": "tool", "name": "verdict"}
			if withTools {
				want = map[string]any{"type": "any"}
			}
			if !reflect.DeepEqual(p.ToolChoice, want) {
				t.Errorf("tool_choice = %v, want %v", p.ToolChoice, want)
			}
			retry := reqs[1].Params.Messages
			if len(retry) != 3 || retry[1].Content.Text() != `{"ok": "yes"}` || !strings.Contains(retry[2].Content.Text(), "does not match") {
				t.Errorf("retry messages = %s", reqs[1].Body)
			}
		})
	}
}
