package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/tool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Both models are what agents expect of a provider.
var (
	_ model.Model     = (*openai.Responses)(nil)
	_ model.Describer = (*openai.Responses)(nil)
	_ model.Model     = (*openai.Chat)(nil)
	_ model.Describer = (*openai.Chat)(nil)
)

// hangTimeout bounds a wait that should end at once; it detects hangs, it does not
// time anything.
const hangTimeout = 10 * time.Second

// api is one of the two APIs, with its fixtures.
type api struct {
	name      string
	new       func(opts ...openai.Option) model.Model
	path      string
	text      string // fixture: "Hello! How can I help?"
	toolCall  string // fixture: get_weather {"city":"Paris"}
	errorMid  string // fixture: "The answer is", then an error
	textCut   int    // events of text to send before cutting it, after some text
	callID    string // the call id in toolCall
	textUsage model.Usage
	textModel string // the model the text fixture says answered
}

var apis = []api{
	{
		name:      "responses",
		new:       func(opts ...openai.Option) model.Model { return openai.NewResponses("gpt-5.2", opts...) },
		path:      "/v1/responses",
		text:      "responses_text.sse",
		toolCall:  "responses_tool_call.sse",
		errorMid:  "responses_error.sse",
		textCut:   6,
		callID:    "call_2FQdm3Br7Qb35YUBSkDR7kue",
		textUsage: model.Usage{InputTokens: 19, OutputTokens: 7, TotalTokens: 26},
		textModel: "gpt-5.2-2025-12-11",
	},
	{
		name:      "chat",
		new:       func(opts ...openai.Option) model.Model { return openai.NewChat("gpt-4.1-mini", opts...) },
		path:      "/v1/chat/completions",
		text:      "chat_text.sse",
		toolCall:  "chat_tool_call.sse",
		errorMid:  "chat_error.sse",
		textCut:   3,
		callID:    "call_pv0MkErN1x2y3z",
		textUsage: model.Usage{InputTokens: 16, OutputTokens: 7, TotalTokens: 23},
		textModel: "gpt-4.1-mini-2025-04-14",
	},
}

// setup starts a fake server with replies queued and returns a model of a talking to
// it, retrying fast.
func (a api) setup(t *testing.T, replies ...openaitest.Reply) (*openaitest.Server, model.Model) {
	t.Helper()
	srv := openaitest.NewServer(t)
	srv.Enqueue(replies...)
	return srv, a.new(options(srv)...)
}

func options(srv *openaitest.Server) []openai.Option {
	return []openai.Option{
		openai.WithBaseURL(srv.URL),
		openai.WithAPIKey(openaitest.APIKey),
		openai.WithHTTPClient(srv.Client()),
		openai.WithRetry(model.RetryPolicy{BaseDelay: time.Millisecond}),
	}
}

// result is everything one range over a stream produced.
type result struct {
	text   string
	calls  []model.ToolCall
	chunks []model.Chunk
	last   model.Chunk // the last chunk without an error
	err    error
	after  int // values yielded after an error
}

func collect(ctx context.Context, m model.Model, req *model.Request) result {
	var r result
	for c, err := range m.Stream(ctx, req) {
		if r.err != nil {
			r.after++
			continue
		}
		if err != nil {
			r.err = err
			continue
		}
		r.chunks = append(r.chunks, c)
		r.text += c.Text
		r.calls = append(r.calls, c.ToolCalls...)
		r.last = c
	}
	return r
}

func ask(text string) *model.Request {
	return &model.Request{Instructions: "be brief", Messages: []model.Message{{Role: model.RoleUser, Content: text}}}
}

var weatherTool = tool.Definition{
	Name:        "get_weather",
	Description: "Get the weather in a city",
	Parameters:  json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`),
}

func TestText(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t, openaitest.Fixture(a.text))
			r := collect(t.Context(), m, ask("hi"))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.text != "Hello! How can I help?" {
				t.Errorf("text %q", r.text)
			}
			if len(r.chunks) != 8 {
				t.Errorf("%d chunks, want 7 deltas and a last one", len(r.chunks))
			}
			if r.last.Model != a.textModel {
				t.Errorf("last chunk's model %q, want %q", r.last.Model, a.textModel)
			}
			if r.last.FinishReason != model.FinishStop || r.last.Usage == nil || *r.last.Usage != a.textUsage {
				t.Errorf("last chunk %+v, usage %+v", r.last, r.last.Usage)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Path != a.path {
				t.Fatalf("requests %+v", reqs)
			}
			h := reqs[0].Header
			if h.Get("Authorization") != "Bearer "+openaitest.APIKey || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", h)
			}
			if reqs[0].Body["stream"] != true {
				t.Errorf("stream not true: %s", reqs[0].Raw)
			}
		})
	}
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	// The second turn of a tool round trip, compared with the bodies PROTOCOLS.md §1.2
	// and §2.1 captured from the official SDK.
	req := &model.Request{
		Instructions: "be brief",
		Messages: []model.Message{
			{Role: model.RoleUser, Content: "weather in Paris?"},
			{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "call_0", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}},
			{Role: model.RoleTool, ToolCallID: "call_0", ToolName: "get_weather", Content: "sunny"},
		},
		Tools: []tool.Definition{weatherTool},
	}
	params := `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`
	tests := []struct {
		api  api
		want string
	}{
		{apis[0], `{"model":"gpt-5.2","instructions":"be brief","input":[
			{"role":"user","content":"weather in Paris?"},
			{"type":"function_call","call_id":"call_0","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
			{"type":"function_call_output","call_id":"call_0","output":"sunny"}],
			"tools":[{"type":"function","name":"get_weather","description":"Get the weather in a city","parameters":` + params + `,"strict":false}],
			"store":false,"stream":true}`},
		{apis[1], `{"model":"gpt-4.1-mini","messages":[
			{"role":"system","content":"be brief"},
			{"role":"user","content":"weather in Paris?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"call_0","content":"sunny"}],
			"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather in a city","parameters":` + params + `,"strict":false}}],
			"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.api.name, func(t *testing.T) {
			t.Parallel()
			srv, m := tt.api.setup(t, openaitest.Fixture(tt.api.text))
			if r := collect(t.Context(), m, req); r.err != nil {
				t.Fatal(r.err)
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := srv.Requests()[0]; !reflect.DeepEqual(got.Body, want) {
				t.Errorf("body\n got %s\nwant %s", got.Raw, tt.want)
			}
		})
	}
}

func TestToolCallRoundTrip(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t, openaitest.Fixture(a.toolCall), openaitest.Fixture(a.text))
			req := ask("weather in Paris?")
			req.Tools = []tool.Definition{weatherTool}
			r := collect(t.Context(), m, req)
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := []model.ToolCall{{ID: a.callID, Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}
			if !reflect.DeepEqual(r.calls, want) || r.text != "" {
				t.Errorf("calls %+v, text %q", r.calls, r.text)
			}
			if r.last.FinishReason != model.FinishToolCalls || r.last.Usage == nil {
				t.Errorf("last chunk %+v", r.last)
			}

			req.Messages = append(req.Messages,
				model.Message{Role: model.RoleAssistant, ToolCalls: r.calls},
				model.Message{Role: model.RoleTool, ToolCallID: r.calls[0].ID, ToolName: "get_weather", Content: "sunny"})
			if r := collect(t.Context(), m, req); r.err != nil || r.text != "Hello! How can I help?" {
				t.Fatalf("second turn: %q, %v", r.text, r.err)
			}
			body := srv.Requests()[1].Raw
			for _, s := range secondTurn(a, a.callID) {
				if !strings.Contains(string(body), s) {
					t.Errorf("second request lacks %s:\n%s", s, body)
				}
			}
		})
	}
}

// secondTurn is what the second request of a round trip must contain.
func secondTurn(a api, id string) []string {
	if a.name == "responses" {
		return []string{
			`{"type":"function_call","call_id":"` + id + `","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`,
			`{"type":"function_call_output","call_id":"` + id + `","output":"sunny"}`,
		}
	}
	return []string{
		`{"role":"assistant","content":null,"tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}`,
		`{"role":"tool","content":"sunny","tool_call_id":"` + id + `"}`,
	}
}

func TestErrorEventMidStream(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t, openaitest.Fixture(a.errorMid))
			r := collect(t.Context(), m, ask("hi"))
			if r.text != "The answer is" {
				t.Errorf("text before the error %q", r.text)
			}
			var e *model.APIError
			if !errors.Is(r.err, model.ErrServer) || !errors.As(r.err, &e) || !strings.Contains(e.Message, "Sorry about that") {
				t.Fatalf("error %v", r.err)
			}
			if r.after != 0 || len(srv.Requests()) != 1 {
				t.Errorf("%d values after the error, %d requests", r.after, len(srv.Requests()))
			}
		})
	}
}

func TestResponsesTerminalEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reply   openaitest.Reply
		text    string
		finish  model.FinishReason
		wantErr error
	}{
		{"failed", openaitest.Fixture("responses_failed.sse"), "", "", model.ErrRateLimited},
		{"incomplete", openaitest.Fixture("responses_incomplete.sse"), "Once upon a time", model.FinishLength, nil},
		{"flat error event", openaitest.Stream(`event: error
data: {"type":"error","code":"server_error","message":"boom","param":null,"sequence_number":0}

`), "", "", model.ErrServer},
		{"failed with an unknown code", openaitest.Stream(`event: response.failed
data: {"type":"response.failed","response":{"status":"failed","error":{"code":"invalid_prompt","message":"no"}},"sequence_number":0}

`), "", "", model.ErrServer},
		{"empty", openaitest.Stream(`event: response.created
data: {"type":"response.created","response":{"status":"in_progress","output":[]},"sequence_number":0}

event: response.completed
data: {"type":"response.completed","response":{"status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":0,"total_tokens":3}},"sequence_number":1}

`), "", model.FinishStop, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, m := apis[0].setup(t, tt.reply)
			r := collect(t.Context(), m, ask("hi"))
			if !errors.Is(r.err, tt.wantErr) || (tt.wantErr != nil) != (r.err != nil) {
				t.Fatalf("error %v, want %v", r.err, tt.wantErr)
			}
			if r.text != tt.text || r.last.FinishReason != tt.finish {
				t.Errorf("text %q, finish %q", r.text, r.last.FinishReason)
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	text := openaitest.Fixture(apis[0].text)
	tests := []struct {
		name     string
		replies  []openaitest.Reply
		wantErr  error
		message  string // in the error
		requests int
	}{
		{"401", []openaitest.Reply{openaitest.Unauthorized()}, model.ErrAuth, "API key rejected", 1},
		{"429 then success", []openaitest.Reply{openaitest.RateLimited(5 * time.Millisecond), text}, nil, "", 2},
		{"429 quota", []openaitest.Reply{openaitest.QuotaExceeded()}, model.ErrRateLimited, "exceeded your current quota", 1},
		{"500 exhausted", []openaitest.Reply{openaitest.ServerError(), openaitest.ServerError(), openaitest.ServerError()}, model.ErrServer, "Sorry about that", 3},
		{"503 exhausted", []openaitest.Reply{openaitest.Overloaded(), openaitest.Overloaded(), openaitest.Overloaded()}, model.ErrServer, "overloaded", 3},
		{"400", []openaitest.Reply{openaitest.BadRequest("Invalid value for 'input': expected an array.")}, model.ErrBadRequest, "Invalid value for 'input'", 1},
	}
	for _, a := range apis {
		for _, tt := range tests {
			t.Run(a.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				replies := tt.replies
				if tt.wantErr == nil {
					replies = append(replies[:len(replies)-1:len(replies)-1], openaitest.Fixture(a.text))
				}
				srv, m := a.setup(t, replies...)
				r := collect(t.Context(), m, ask("hi"))
				if !errors.Is(r.err, tt.wantErr) || (tt.wantErr == nil) != (r.err == nil) {
					t.Fatalf("error %v, want %v", r.err, tt.wantErr)
				}
				if r.err != nil && !strings.Contains(r.err.Error(), tt.message) {
					t.Errorf("error %q lacks %q", r.err, tt.message)
				}
				if r.err == nil && r.text != "Hello! How can I help?" {
					t.Errorf("text %q", r.text)
				}
				if n := len(srv.Requests()); n != tt.requests {
					t.Errorf("%d requests, want %d", n, tt.requests)
				}
			})
		}
	}
}

func TestStreamCut(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name+"/connection dropped", func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t, openaitest.Fixture(a.text).CutAfter(a.textCut), openaitest.Fixture(a.text))
			r := collect(t.Context(), m, ask("hi"))
			if !errors.Is(r.err, model.ErrStreamCut) || r.text == "" {
				t.Fatalf("text %q, error %v", r.text, r.err)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests: retried after content was yielded", n)
			}
		})
		t.Run(a.name+"/clean end before the terminal event", func(t *testing.T) {
			t.Parallel()
			events := strings.SplitAfter(string(openaitest.FixtureBytes(a.text)), "\n\n")
			_, m := a.setup(t, openaitest.Stream(strings.Join(events[:a.textCut], "")))
			r := collect(t.Context(), m, ask("hi"))
			if !errors.Is(r.err, model.ErrStreamCut) || r.text == "" {
				t.Fatalf("text %q, error %v", r.text, r.err)
			}
		})
	}
}

func TestCancelSlowStream(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t, openaitest.Fixture(a.text).Hang(a.textCut))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan result, 1)
			go func() {
				var r result
				for c, err := range m.Stream(ctx, ask("hi")) {
					if err != nil {
						r.err = err
						break
					}
					r.text += c.Text
					cancel() // the first text is there: the caller gives up
				}
				done <- r
			}()
			select {
			case r := <-done:
				if !errors.Is(r.err, context.Canceled) || r.text == "" {
					t.Errorf("text %q, error %v", r.text, r.err)
				}
			case <-time.After(hangTimeout):
				t.Fatal("Stream did not return after the cancel")
			}
			select {
			case <-srv.ClientGone():
			case <-time.After(hangTimeout):
				t.Fatal("the server never saw the request cancelled")
			}
		})
	}
}

func TestConsumerStops(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			_, m := a.setup(t, openaitest.Fixture(a.text))
			n := 0
			for range m.Stream(t.Context(), ask("hi")) {
				n++
				break
			}
			if n != 1 {
				t.Errorf("%d values", n)
			}
		})
	}
}

func TestTolerance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		api    api
		stream string
		text   string
		calls  []model.ToolCall
		finish model.FinishReason
		usage  *model.Usage
	}{
		{
			name: "responses: comments, unknown events, malformed data, no event lines",
			api:  apis[0],
			stream: `: keep-alive

event: response.created
data: {"type":"response.created","response":{"status":"in_progress"},"sequence_number":0}

event: response.reasoning_summary_text.delta
data: {"type":"response.reasoning_summary_text.delta","delta":"thinking","sequence_number":1}

event: response.output_text.delta
data: not json

event: response.future_event
data: {"type":"response.future_event","delta":"x"}

data: {"type":"response.output_text.delta","delta":"Hi","item_id":"msg_1"}

data: {"sequence_number":2, "delta" : "\u00e9\n", "type": "response.output_text.delta"}

event: response.output_text.delta
data: {"type":"response.output_text.delta","content_index":0,"delta":"\"q\" \ud83d\ude00","sequence_number":3}

event: response.completed
data: {"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":1,"output_tokens":2}}}

`,
			text:   "Hié\n\"q\" 😀",
			finish: model.FinishStop,
			usage:  &model.Usage{InputTokens: 1, OutputTokens: 2, TotalTokens: 3},
		},
		{
			name: "responses: llama.cpp (done events only, no sequence numbers)",
			api:  apis[0],
			stream: `event: response.output_text.done
data: {"type":"response.output_text.done","text":"Let me check."}

event: response.output_item.done
data: {"type":"response.output_item.done","item":{"type":"function_call","call_id":"fc_7","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}}

event: response.completed
data: {"type":"response.completed","response":{"status":"completed"}}

`,
			text:   "Let me check.",
			calls:  []model.ToolCall{{ID: "fc_7", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}},
			finish: model.FinishToolCalls,
		},
		{
			name: "responses: invalid arguments passed through",
			api:  apis[0],
			stream: `event: response.output_item.added
data: {"type":"response.output_item.added","item":{"id":"fc_1","type":"function_call","arguments":"","call_id":"call_1","name":"get_weather"},"output_index":0}

event: response.function_call_arguments.delta
data: {"type":"response.function_call_arguments.delta","delta":"{\"city\":","item_id":"fc_1","output_index":0}

event: response.output_item.done
data: {"type":"response.output_item.done","item":{"id":"fc_1","type":"function_call","arguments":"","call_id":"call_1","name":"get_weather"},"output_index":0}

event: response.completed
data: {"type":"response.completed","response":{"status":"completed"}}

`,
			calls:  []model.ToolCall{{ID: "call_1", Name: "get_weather", Arguments: json.RawMessage(`{"city":`)}},
			finish: model.FinishToolCalls,
		},
		{
			name: "responses: [DONE] tolerated",
			api:  apis[0],
			stream: `data: {"type":"response.output_text.delta","delta":"Hi"}

data: [DONE]

`,
			text:   "Hi",
			finish: model.FinishStop,
		},
		{
			name: "chat: comments, malformed chunks, other choices, null ids",
			api:  apis[1],
			stream: `: keep-alive

data: not json

data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}

data: {"choices":[{"index":1,"delta":{"content":"other choice"},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":null,"function":{"name":null,"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}

data: {"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"tool_calls"}],"usage":null}

data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}}

data: [DONE]

`,
			text:   "Hi!",
			calls:  []model.ToolCall{{ID: "call_a", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}},
			finish: model.FinishToolCalls,
			usage:  &model.Usage{InputTokens: 4, OutputTokens: 5, TotalTokens: 9},
		},
		{
			name: "chat: invalid arguments passed through, no [DONE] after the finish chunk",
			api:  apis[1],
			stream: `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_b","function":{"name":"get_weather","arguments":"{oops"}}]},"finish_reason":"tool_calls"}]}

`,
			calls:  []model.ToolCall{{ID: "call_b", Name: "get_weather", Arguments: json.RawMessage(`{oops`)}},
			finish: model.FinishToolCalls,
		},
		{
			name:   "chat: empty answer",
			api:    apis[1],
			stream: "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
			finish: model.FinishStop,
		},
		{
			name:   "chat: length",
			api:    apis[1],
			stream: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
			text:   "Once",
			finish: model.FinishLength,
		},
		{
			name:   "chat: local server quirks (whole call without id, stop, usage with timings)",
			api:    apis[1],
			stream: string(openaitest.FixtureBytes("chat_local_tool_call.sse")),
			calls:  []model.ToolCall{{ID: "call_0_0", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}},
			finish: model.FinishToolCalls,
			usage:  &model.Usage{InputTokens: 150, OutputTokens: 20, TotalTokens: 170},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, m := tt.api.setup(t, openaitest.Stream(tt.stream))
			r := collect(t.Context(), m, ask("hi"))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.text != tt.text || !reflect.DeepEqual(r.calls, tt.calls) || r.last.FinishReason != tt.finish {
				t.Errorf("text %q, calls %s, finish %q", r.text, r.calls, r.last.FinishReason)
			}
			if tt.usage != nil && (r.last.Usage == nil || *r.last.Usage != *tt.usage) {
				t.Errorf("usage %+v", r.last.Usage)
			}
		})
	}
}

func TestNotEventStream(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			_, m := a.setup(t, openaitest.Body(200, "text/html", "<html><body>Sign in to the proxy</body></html>"))
			r := collect(t.Context(), m, ask("hi"))
			if !errors.Is(r.err, openai.ErrNotEventStream) || !strings.Contains(r.err.Error(), "Sign in to the proxy") {
				t.Fatalf("error %v", r.err)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	// Not parallel: it sets environment variables.
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("OPENAI_BASE_URL", "")
	for _, a := range apis {
		t.Run(a.name+"/missing for api.openai.com", func(t *testing.T) {
			r := collect(t.Context(), a.new(), ask("hi"))
			if !errors.Is(r.err, openai.ErrNoAPIKey) || !strings.Contains(r.err.Error(), "set OPENAI_API_KEY or use WithAPIKey") {
				t.Fatalf("error %v", r.err)
			}
		})
		t.Run(a.name+"/not needed by a local server", func(t *testing.T) {
			srv := openaitest.NewServer(t)
			srv.SetAPIKey("")
			srv.Enqueue(openaitest.Fixture(a.text))
			m := a.new(openai.WithBaseURL(srv.URL), openai.WithHTTPClient(srv.Client()))
			if r := collect(t.Context(), m, ask("hi")); r.err != nil {
				t.Fatal(r.err)
			}
			if h := srv.Requests()[0].Header; h.Get("Authorization") != "" {
				t.Errorf("Authorization sent: %q", h.Get("Authorization"))
			}
		})
		t.Run(a.name+"/from the environment", func(t *testing.T) {
			srv := openaitest.NewServer(t)
			srv.Enqueue(openaitest.Fixture(a.text))
			t.Setenv("OPENAI_API_KEY", openaitest.APIKey)
			t.Setenv("OPENAI_BASE_URL", srv.URL+"/")
			m := a.new(openai.WithHTTPClient(srv.Client()))
			if r := collect(t.Context(), m, ask("hi")); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	srv := openaitest.NewServer(t)
	srv.Enqueue(openaitest.Fixture(apis[0].text))
	m := openai.NewResponses("gpt-5.2", append(options(srv),
		openai.WithOrganization("org-1"), openai.WithProject("proj_1"), openai.WithHeader("X-Trace", "abc"))...)
	if r := collect(t.Context(), m, ask("hi")); r.err != nil {
		t.Fatal(r.err)
	}
	h := srv.Requests()[0].Header
	if h.Get("OpenAI-Organization") != "org-1" || h.Get("OpenAI-Project") != "proj_1" || h.Get("X-Trace") != "abc" {
		t.Errorf("headers %v", h)
	}
}

func TestDescriber(t *testing.T) {
	t.Parallel()
	r, c := openai.NewResponses("gpt-5.2"), openai.NewChat("llama3.2")
	if r.Provider() != "openai" || r.ModelID() != "gpt-5.2" || c.Provider() != "openai" || c.ModelID() != "llama3.2" {
		t.Errorf("%s %s %s %s", r.Provider(), r.ModelID(), c.Provider(), c.ModelID())
	}
}
