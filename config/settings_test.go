package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
)

const settingsYAML = `models:
  m:
    provider: scripted
    text: '{"title": "Dragons", "score": 9}'
    temperature: 0.2
    top_p: 1
    max_tokens: 800
    stop: ["END", "STOP"]
    seed: 7
    reasoning_effort: low
    parallel_tool_calls: false
    tool_choice: auto
    extra: {service_tier: flex}
agents:
  plain: {model: m}
  judge:
    model: m
    settings: {temperature: 0.9, stop: DONE, tool_choice: none}
    output_schema:
      title: Review
      type: object
      additionalProperties: false
      properties:
        title: {type: string}
        score: {type: integer, minimum: 0, maximum: 10}
      required: [title, score]
`

func TestSettingsAndOutputSchema(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(settingsYAML))
	if err != nil {
		t.Fatal(err)
	}
	plain, judge := cfg.Agents[0], cfg.Agents[1]
	want := model.Settings{Temperature: model.Float(0.2), TopP: model.Float(1), MaxTokens: 800, Stop: []string{"END", "STOP"},
		Seed: model.Int(7), ReasoningEffort: "low", ParallelToolCalls: model.Bool(false), ToolChoice: model.ToolChoiceAuto,
		Extra: map[string]any{"service_tier": "flex"}}
	if plain.Settings == nil || !reflect.DeepEqual(*plain.Settings, want) || plain.Output != nil {
		t.Errorf("plain agent settings = %+v", plain.Settings)
	}
	s := judge.Settings
	if *s.Temperature != 0.9 || s.Stop[0] != "DONE" || len(s.Stop) != 1 || s.ToolChoice != model.ToolChoiceNone || s.MaxTokens != 800 || *s.Seed != 7 {
		t.Errorf("judge settings (its own over the model's) = %+v", s)
	}
	if judge.Output == nil || judge.Output.Name() != "Review" {
		t.Fatalf("judge output schema = %+v", judge.Output)
	}
	out, err := judge.Run(t.Context(), "review")
	if err != nil || out.Content != `{"title":"Dragons","score":9}` || out.ContentType != "Review" {
		t.Fatalf("output %q %q, error %v", out.Content, out.ContentType, err)
	}
	v, err := agent.Decode[map[string]any](out)
	if err != nil || v["score"] != 9.0 {
		t.Fatalf("decoded %v, %v", v, err)
	}
}

func TestSettingsBad(t *testing.T) {
	t.Parallel()
	agents := "agents:\n  a: {model: m}\n"
	model := func(fields string) string { return "models:\n  m: {provider: scripted, " + fields + "}\n" + agents }
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"temperature not a number", model("temperature: hot"), 2, "temperature must be a number, not a string"},
		{"temperature out of range", model("temperature: 3"), 2, "temperature 3 is out of range"},
		{"top_p out of range", model("top_p: 1.5"), 2, "top_p 1.5 is out of range"},
		{"max_tokens negative", model("max_tokens: -5"), 2, "max_tokens must be positive"},
		{"max_tokens not an integer", model("max_tokens: 1.5"), 2, "max_tokens must be an integer"},
		{"stop not strings", model("stop: {a: b}"), 2, "stop must be a string or a list of strings"},
		{"stop empty", model("stop: ['']"), 2, "stop sequence 0 is empty"},
		{"seed not an integer", model("seed: 1.5"), 2, "seed must be an integer"},
		{"effort unknown", model("reasoning_effort: extreme"), 2, `reasoning_effort "extreme" is not one of`},
		{"parallel not a bool", model("parallel_tool_calls: sometimes"), 2, "parallel_tool_calls must be true or false"},
		{"tool_choice not a string", model("tool_choice: 3"), 2, "tool_choice must be a string"},
		{"tool_choice bad name", model("tool_choice: 'get weather'"), 2, "tool_choice"},
		{"extra not a mapping", model("extra: [1]"), 2, "extra must be a mapping"},
		{"anthropic seed", "models:\n  m: {provider: anthropic, id: claude, seed: 1}\n" + agents, 2, "takes no seed"},
		{"anthropic thinking and temperature", "models:\n  m: {provider: anthropic, id: claude, reasoning_effort: high, temperature: 0.3}\n" + agents, 2, "refuses a temperature"},
		{"openai stop", "models:\n  m: {provider: openai, id: gpt, stop: [x]}\n" + agents, 2, "no stop sequences"},
		{"agent unknown setting", base + "  b: {model: m, settings: {temprature: 1}}\n", 5, `unknown key "temprature"`},
		{"agent setting out of range", base + "  b: {model: m, settings: {top_p: -1}}\n", 5, "settings top_p: invalid model settings: top_p -1 is out of range"},
		{"agent tool_choice unknown tool", base + "  b: {model: m, settings: {tool_choice: get_time}}\n", 5, `tool_choice names tool "get_time"`},
		{"agent settings refused by the provider", "models:\n  m: {provider: anthropic, id: claude}\nagents:\n  a: {model: m, settings: {seed: 3}}\n", 4, "takes no seed"},
		{"output_schema not a mapping", base + "  b: {model: m, output_schema: [x]}\n", 5, "output_schema must be a mapping"},
		{"output_schema not an object", base + "  b: {model: m, output_schema: {type: string}}\n", 5, "must have type object"},
		{"output_schema bad type", base + "  b: {model: m, output_schema: {type: object, properties: {a: {type: text}}}}\n", 5, `type "text" is not one of`},
		{"output_schema bad keyword", base + "  b: {model: m, output_schema: {type: object, required: yes}}\n", 5, "not a JSON Schema"},
	}
	for _, tt := range tests {
		_, err := Parse("kern.yaml", []byte(tt.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		first := es[0]
		if first.Line != tt.line || !strings.Contains(first.Msg, tt.want) {
			t.Errorf("%s: %v\nwant line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}
