package openai_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/tool"
)

// settingsRequest is a request with every setting set, one tool and an output schema.
func settingsRequest(strict bool) *model.Request {
	schema := `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`
	return &model.Request{
		Messages: []model.Message{{Role: model.RoleUser, Content: "weather?"}},
		Tools:    []tool.Definition{{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}},
		Settings: model.Settings{
			Temperature: model.Float(0.3), TopP: model.Float(0.9), MaxTokens: 512,
			ReasoningEffort: "low", ParallelToolCalls: model.Bool(false), ToolChoice: "get_weather",
			Extra: map[string]any{"service_tier": "flex"},
		},
		Output: &model.OutputSchema{Name: "Weather", Description: "the answer", Schema: json.RawMessage(schema), Strict: strict},
	}
}

// field returns the value at a dotted path of a decoded JSON body.
func field(body map[string]any, path string) any {
	var v any = body
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestSettingsOnTheWire(t *testing.T) {
	t.Parallel()
	schema := map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required": []any{"city"}, "additionalProperties": false}
	cases := []struct {
		api  api
		req  func() *model.Request
		want map[string]any
	}{
		{apis[0], func() *model.Request { return settingsRequest(true) }, map[string]any{
			"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 512.0,
			"reasoning.effort": "low", "reasoning.summary": "auto",
			"parallel_tool_calls": false,
			"tool_choice":         map[string]any{"type": "function", "name": "get_weather"},
			"text.format": map[string]any{"type": "json_schema", "name": "Weather", "description": "the answer",
				"schema": schema, "strict": true},
			"service_tier": "flex",
			"stop":         nil, "seed": nil,
		}},
		{apis[1], func() *model.Request {
			r := settingsRequest(true)
			r.Settings.Stop, r.Settings.Seed = []string{"END", "STOP"}, model.Int(42)
			return r
		}, map[string]any{
			"temperature": 0.3, "top_p": 0.9, "max_completion_tokens": 512.0,
			"stop": []any{"END", "STOP"}, "seed": 42.0, "reasoning_effort": "low",
			"parallel_tool_calls": false,
			"tool_choice":         map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}},
			"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{
				"name": "Weather", "description": "the answer", "schema": schema, "strict": true}},
			"service_tier": "flex",
			"max_tokens":   nil,
		}},
	}
	for _, c := range cases {
		t.Run(c.api.name, func(t *testing.T) {
			t.Parallel()
			reply := openaitest.ResponsesText(`{"city":`, `"Paris"}`)
			if c.api.name == "chat" {
				reply = openaitest.ChatText("", `{"city":`, `"Paris"}`)
			}
			srv, m := c.api.setup(t, reply)
			r := collect(t.Context(), m, c.req())
			if r.err != nil || r.text != `{"city":"Paris"}` {
				t.Fatalf("text %q, error %v", r.text, r.err)
			}
			body := srv.Requests()[0].Body
			for path, want := range c.want {
				if got := field(body, path); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
		})
	}
}

// TestZeroSettingsSendNothing: a request without settings sends none of their fields.
func TestZeroSettingsSendNothing(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		srv, m := a.setup(t, openaitest.Fixture(a.text))
		if r := collect(t.Context(), m, &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "hi"}}}); r.err != nil {
			t.Fatal(r.err)
		}
		for _, k := range []string{"temperature", "top_p", "max_output_tokens", "max_completion_tokens", "stop", "seed",
			"reasoning", "reasoning_effort", "parallel_tool_calls", "tool_choice", "text", "response_format"} {
			if v, ok := srv.Requests()[0].Body[k]; ok {
				t.Errorf("%s: %s sent as %v", a.name, k, v)
			}
		}
	}
}

func TestSettingsRefusedBeforeTheRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		api  api
		set  model.Settings
		want error
	}{
		{apis[0], model.Settings{Stop: []string{"END"}}, model.ErrUnsupported},
		{apis[0], model.Settings{Seed: model.Int(1)}, model.ErrUnsupported},
		{apis[0], model.Settings{MaxTokens: 10}, model.ErrUnsupported},
		{apis[1], model.Settings{Stop: []string{"a", "b", "c", "d", "e"}}, model.ErrUnsupported},
		{apis[1], model.Settings{Temperature: model.Float(2.1)}, model.ErrInvalidSettings},
		{apis[0], model.Settings{ToolChoice: model.ToolChoiceRequired}, model.ErrInvalidSettings},
		{apis[1], model.Settings{ToolChoice: "get_time"}, model.ErrInvalidSettings},
		{apis[1], model.Settings{Extra: map[string]any{"model": "other"}}, model.ErrInvalidSettings},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.api.name, i), func(t *testing.T) {
			t.Parallel()
			srv, m := c.api.setup(t)
			req := &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "hi"}}, Settings: c.set}
			r := collect(t.Context(), m, req)
			if !errors.Is(r.err, c.want) || len(srv.Requests()) != 0 {
				t.Fatalf("error %v (want %v), %d requests sent", r.err, c.want, len(srv.Requests()))
			}
			if err := model.Check(m, req); !errors.Is(err, c.want) {
				t.Errorf("Check = %v", err)
			}
		})
	}
}

func TestReasoningAndRefusalChunks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		api                     api
		reply                   openaitest.Reply
		reasoning, refusal, txt string
		finish                  model.FinishReason
	}{
		{apis[0], openaitest.NewResponsesStream().Reasoning("Think", "ing.").Text("Hi").Reply(), "Thinking.", "", "Hi", model.FinishStop},
		{apis[0], openaitest.NewResponsesStream().Refusal("I can't", " help.").Reply(), "", "I can't help.", "", model.FinishRefusal},
		{apis[1], openaitest.ChatText("I can't help."), "", "I can't help.", "", model.FinishRefusal},
		{apis[1], openaitest.Stream("data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Hmm.\"}}]}\n\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yes\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"), "Hmm.", "", "Yes", model.FinishStop},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.api.name, i), func(t *testing.T) {
			t.Parallel()
			_, m := c.api.setup(t, c.reply)
			r := collect(t.Context(), m, &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "hi"}}})
			var reasoning, refusal string
			for _, ch := range r.chunks {
				reasoning += ch.Reasoning
				refusal += ch.Refusal
			}
			if r.err != nil || reasoning != c.reasoning || refusal != c.refusal || r.text != c.txt || r.last.FinishReason != c.finish {
				t.Fatalf("reasoning %q, refusal %q, text %q, finish %q, error %v", reasoning, refusal, r.text, r.last.FinishReason, r.err)
			}
		})
	}
}

type forecast struct {
	City  string   `json:"city"`
	Temp  float64  `json:"temp"`
	Notes []string `json:"notes,omitempty"`
}

type strictForecast struct {
	City string  `json:"city"`
	Temp float64 `json:"temp"`
}

// TestStructuredOutputAgent runs agents with an output schema against the fake,
// which enforces strict mode's rules: a schema that meets them is sent strict, one
// that does not (an optional field) is sent non-strict, and both are accepted.
func TestStructuredOutputAgent(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		for _, schema := range []*agent.OutputSchema{agent.Output[forecast](), agent.Output[strictForecast]()} {
			t.Run(a.name+"/"+schema.Name(), func(t *testing.T) {
				t.Parallel()
				bad, good := openaitest.ResponsesText(`{"city":"Paris"}`), openaitest.ResponsesText(`{"city":"Paris","temp":21.5}`)
				if a.name == "chat" {
					bad, good = openaitest.ChatText("", `{"city":"Paris"}`), openaitest.ChatText("", `{"city":"Paris","temp":21.5}`)
				}
				srv, m := a.setup(t, bad, good)
				ag := &agent.Agent{Name: "Forecaster", Model: m, Output: schema}
				out, err := ag.Run(t.Context(), "weather in Paris?")
				if err != nil {
					t.Fatal(err)
				}
				v, err := agent.Decode[strictForecast](out)
				if err != nil || v.City != "Paris" || v.Temp != 21.5 {
					t.Fatalf("decoded %+v, %v", v, err)
				}
				reqs := srv.Requests()
				if len(reqs) != 2 {
					t.Fatalf("%d requests, want 2 (one retry)", len(reqs))
				}
				path := "text.format.strict"
				if a.name == "chat" {
					path = "response_format.json_schema.strict"
				}
				if got, want := field(reqs[0].Body, path), schema.Name() == "strictForecast"; got != want {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
				if !strings.Contains(string(reqs[1].Raw), "does not match the schema") {
					t.Errorf("retry does not carry the validation error: %s", reqs[1].Raw)
				}
			})
		}
	}
}
