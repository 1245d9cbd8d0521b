package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

type article struct {
	Title string   `json:"title" jsonschema:"the article's title"`
	Words int      `json:"words"`
	Tags  []string `json:"tags,omitempty"`
}

// requests is a scripted model that answers with turns in order and keeps the
// requests it was sent.
type requests struct {
	mu   sync.Mutex
	reqs []model.Request
}

func (r *requests) model(turns ...scripted.Turn) *scripted.Model {
	return &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reqs = append(r.reqs, *req)
		return turns[min(len(r.reqs)-1, len(turns)-1)]
	}}
}

func (r *requests) all() []model.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]model.Request(nil), r.reqs...)
}

func TestStructuredOutput(t *testing.T) {
	t.Parallel()
	var r requests
	a := &agent.Agent{Name: "Writer", Model: r.model(scripted.Turn{Text: `{"title": "Dragons", "words": 3}`}), Output: agent.Output[article]()}
	evs := collect(t, a, t.Context(), "write")
	// The answer is sent once valid: after its model request completed.
	want := []run.EventType{run.EventRunStarted, run.EventModelRequestStarted, run.EventModelRequestCompleted,
		run.EventRunContent, run.EventRunContentCompleted, run.EventRunCompleted}
	if got := types(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for _, ev := range []*run.Event{evs[3], evs[5]} {
		b, _ := ev.AppendJSON(nil)
		if !strings.Contains(string(b), `"content":{"title":"Dragons","words":3}`) || !strings.Contains(string(b), `"content_type":"article"`) {
			t.Errorf("%s does not carry the JSON object as content: %s", ev.Event, b)
		}
	}
	req := r.all()[0]
	if req.Output == nil || req.Output.Name != "article" || req.Output.Strict {
		t.Fatalf("request output = %+v (tags is optional: not strict)", req.Output)
	}
	var schema map[string]any
	if err := json.Unmarshal(req.Output.Schema, &schema); err != nil || schema["type"] != "object" {
		t.Fatalf("schema %s (%v)", req.Output.Schema, err)
	}

	out, err := a.Run(t.Context(), "write")
	if err != nil || out.ContentType != "article" || out.Content != `{"title":"Dragons","words":3}` {
		t.Fatalf("output %q (%q), error %v", out.Content, out.ContentType, err)
	}
	v, err := agent.Decode[article](out)
	if err != nil || v.Title != "Dragons" || v.Words != 3 {
		t.Fatalf("Decode = %+v, %v", v, err)
	}
	if raw, ok := out.StructuredContent(); !ok || string(raw) != out.Content {
		t.Errorf("StructuredContent = %s, %v", raw, ok)
	}
}

func TestStructuredOutputRetry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		turns   []scripted.Turn
		wantErr bool
	}{
		{"invalid then valid", []scripted.Turn{{Text: `{"title": "Dragons"}`}, {Text: "```json\n{\"title\": \"Dragons\", \"words\": 2}\n```"}}, false},
		{"not JSON then valid", []scripted.Turn{{Text: "Here you go!"}, {Text: `{"title": "D", "words": 1}`}}, false},
		{"still invalid", []scripted.Turn{{Text: `{"title": 1}`}, {Text: `{"title": "D", "words": "many"}`}}, true},
		{"refusal", []scripted.Turn{{Refusal: "I can't help with that."}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var r requests
			a := &agent.Agent{Name: "Writer", Model: r.model(c.turns...), Output: agent.Output[article]()}
			out, err := a.Run(t.Context(), "write")
			reqs := r.all()
			if c.wantErr {
				if !errors.Is(err, agent.ErrInvalidOutput) || out.Status != run.StatusError || out.ContentType != "" {
					t.Fatalf("error %v, status %s, content type %q", err, out.Status, out.ContentType)
				}
				if c.turns[0].Refusal == "" && len(reqs) != 2 {
					t.Errorf("%d requests, want 2 (one retry)", len(reqs))
				}
				if c.turns[0].Refusal != "" && (len(reqs) != 1 || !strings.Contains(err.Error(), "refused")) {
					t.Errorf("refusal: %d requests, error %v", len(reqs), err)
				}
				return
			}
			if err != nil || out.ContentType != "article" {
				t.Fatalf("error %v, output %+v", err, out)
			}
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			msgs := reqs[1].Messages
			last := msgs[len(msgs)-1]
			if len(msgs) != 3 || msgs[1].Role != model.RoleAssistant || msgs[1].Content != c.turns[0].Text ||
				last.Role != model.RoleUser || !strings.Contains(last.Content, "not valid") {
				t.Fatalf("retry request messages = %+v", msgs)
			}
		})
	}
}

type badOutput struct {
	Ch chan int `json:"ch"`
}

func TestOutputSchemaInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		schema *agent.OutputSchema
		want   string
	}{
		{"channel field", agent.Output[badOutput](), "chan"},
		{"not a struct", agent.Output[int](), "not a struct"},
		{"not JSON", agent.OutputJSON("x", []byte(`{"type": "object",`)), "not a JSON Schema"},
		{"bad type", agent.OutputJSON("x", []byte(`{"type": "objekt"}`)), "type object"},
		{"bad keyword value", agent.OutputJSON("x", []byte(`{"type": "object", "properties": {"a": {"type": "strin"}}}`)), "not a valid JSON Schema"},
		{"array root", agent.OutputJSON("x", []byte(`{"type": "array"}`)), "type object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := &agent.Agent{Name: "A", Model: scripted.New("{}"), Output: c.schema}
			_, err := a.Run(t.Context(), "go")
			if !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want run.ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestOutputJSON(t *testing.T) {
	t.Parallel()
	s := agent.OutputJSON("", []byte(`{"title": "Verdict", "type": "object", "additionalProperties": false,
		"properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}`))
	if s.Err() != nil || s.Name() != "Verdict" {
		t.Fatalf("schema %q: %v", s.Name(), s.Err())
	}
	var r requests
	a := &agent.Agent{Name: "Judge", Model: r.model(scripted.Turn{Text: `{"ok": true}`}), Output: s}
	out, err := a.Run(t.Context(), "judge")
	if err != nil || out.Content != `{"ok":true}` || out.ContentType != "Verdict" {
		t.Fatalf("output %+v, error %v", out, err)
	}
	if o := r.all()[0].Output; o == nil || !o.Strict {
		t.Errorf("a closed schema with every property required is strict: %+v", o)
	}
}

func TestSettingsInvalid(t *testing.T) {
	t.Parallel()
	weather := tool.Func("get_weather", "Weather", func(ctx context.Context, a weatherArgs) (string, error) { return "sunny", nil })
	cases := []struct {
		name     string
		model    model.Model
		settings model.Settings
		run      *model.Settings // per-run override
		want     error
	}{
		{"temperature", scripted.New("hi"), model.Settings{Temperature: model.Float(2.5)}, nil, model.ErrInvalidSettings},
		{"top_p", scripted.New("hi"), model.Settings{TopP: model.Float(-0.1)}, nil, model.ErrInvalidSettings},
		{"effort", scripted.New("hi"), model.Settings{ReasoningEffort: "extreme"}, nil, model.ErrInvalidSettings},
		{"unknown tool", scripted.New("hi"), model.Settings{ToolChoice: "get_time"}, nil, model.ErrInvalidSettings},
		{"per run", scripted.New("hi"), model.Settings{}, &model.Settings{MaxTokens: -1}, model.ErrInvalidSettings},
		{"anthropic seed", anthropic.New("claude", anthropic.WithAPIKey("k")), model.Settings{Seed: model.Int(1)}, nil, model.ErrUnsupported},
		{"anthropic thinking and temperature", anthropic.New("claude", anthropic.WithAPIKey("k")), model.Settings{}, &model.Settings{ReasoningEffort: "high", Temperature: model.Float(0.5)}, model.ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := &agent.Agent{Name: "A", Model: c.model, Tools: []tool.Tool{weather}, Settings: &c.settings}
			var opts []run.Option
			if c.run != nil {
				opts = append(opts, agent.WithSettings(*c.run))
			}
			_, err := a.Run(t.Context(), "go", opts...)
			if !errors.Is(err, run.ErrInvalid) || !errors.Is(err, c.want) {
				t.Fatalf("error %v, want run.ErrInvalid and %v", err, c.want)
			}
		})
	}
}

func TestSettingsReachTheModel(t *testing.T) {
	t.Parallel()
	var r requests
	a := &agent.Agent{Name: "A", Model: r.model(scripted.Turn{Text: "hi"}),
		Settings: &model.Settings{Temperature: model.Float(0.2), MaxTokens: 100, Stop: []string{"END"}}}
	if _, err := a.Run(t.Context(), "go", agent.WithSettings(model.Settings{Temperature: model.Float(0.7), Seed: model.Int(7)})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(t.Context(), "go"); err != nil {
		t.Fatal(err)
	}
	reqs := r.all()
	s0, s1 := reqs[0].Settings, reqs[1].Settings
	if *s0.Temperature != 0.7 || s0.MaxTokens != 100 || s0.Stop[0] != "END" || *s0.Seed != 7 {
		t.Errorf("per-run settings: %+v", s0)
	}
	if *s1.Temperature != 0.2 || s1.Seed != nil {
		t.Errorf("the override leaked into the next run: %+v", s1)
	}
}

func TestReasoningAndRefusalEvents(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "A", Model: &scripted.Model{Turns: []scripted.Turn{{Reasoning: "Let me think.", Text: "Fine", Refusal: "but no more"}}}}
	evs := collect(t, a, t.Context(), "go")
	want := []run.EventType{run.EventRunStarted, run.EventModelRequestStarted, run.EventReasoningStarted, run.EventReasoningContentDelta,
		run.EventReasoningCompleted, run.EventRunContent, run.EventRunRefusal, run.EventModelRequestCompleted, run.EventRunContentCompleted, run.EventRunCompleted}
	if got := types(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if evs[3].Detail.ReasoningContent != "Let me think." || evs[4].Detail.ReasoningContent != "Let me think." || evs[6].Content != "but no more" {
		t.Errorf("reasoning %+v / %+v, refusal %q", evs[3].Detail, evs[4].Detail, evs[6].Content)
	}
	b, _ := evs[3].AppendJSON(nil)
	if !strings.Contains(string(b), `"reasoning_content":"Let me think."`) {
		t.Errorf("delta JSON: %s", b)
	}
}

// BenchmarkOutputParse is the cost of a structured answer per response: decoding,
// validating against the schema and compacting a valid answer, or finding an
// answer invalid (what the retry prompt then reports).
func BenchmarkOutputParse(b *testing.B) {
	s := agent.Output[article]()
	for _, c := range []struct {
		name, text string
		valid      bool
	}{
		{"valid", `{"title": "Dragons who learn to code", "words": 1200, "tags": ["dragons", "go", "fiction"]}`, true},
		{"invalid", `{"title": "Dragons who learn to code", "words": "many", "tags": ["dragons", "go", "fiction"]}`, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Parse(c.text); (err == nil) != c.valid {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestAttachmentsReachTheModel(t *testing.T) {
	t.Parallel()
	var r requests
	a := &agent.Agent{Name: "A", Model: r.model(scripted.Turn{Text: "a cat"})}
	img := model.ImageURL("https://example.com/cat.jpg")
	if _, err := a.Run(t.Context(), "what is it?", agent.WithAttachments(img)); err != nil {
		t.Fatal(err)
	}
	msgs := r.all()[0].Messages
	if len(msgs) != 1 || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].URL != img.URL {
		t.Fatalf("messages = %+v", msgs)
	}
	_, err := a.Run(t.Context(), "and this?", agent.WithAttachments(model.ImageData("", []byte{1})))
	if !errors.Is(err, run.ErrInvalid) || !errors.Is(err, model.ErrInvalidSettings) || len(r.all()) != 1 {
		t.Fatalf("error %v, %d requests", err, len(r.all()))
	}
}
