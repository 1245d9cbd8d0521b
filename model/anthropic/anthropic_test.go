package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/anthropic"
	"github.com/kern-dev/kern/model/anthropic/anthropictest"
	"github.com/kern-dev/kern/tool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	_ model.Model     = (*anthropic.Model)(nil)
	_ model.Describer = (*anthropic.Model)(nil)
)

// hangTimeout only detects a hang; no test waits for it when it passes.
const hangTimeout = 30 * time.Second

// fast retries at once, so that retry tests take no time.
var fast = model.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Second}

// newServer starts a fake with replies, closed (with its client's idle connections)
// when the test ends.
func newServer(t *testing.T, replies ...anthropictest.Reply) *anthropictest.Server {
	t.Helper()
	srv := anthropictest.NewServer(replies...)
	t.Cleanup(srv.Close)
	return srv
}

// newModel returns a model that talks to srv with the key "sk-ant-test".
func newModel(srv *anthropictest.Server, opts ...anthropic.Option) *anthropic.Model {
	base := []anthropic.Option{
		anthropic.WithBaseURL(srv.URL),
		anthropic.WithAPIKey("sk-ant-test"),
		anthropic.WithHTTPClient(srv.Client()),
		anthropic.WithRetry(fast),
	}
	return anthropic.New("claude-sonnet-4-5", append(base, opts...)...)
}

// fixture returns a reply that streams testdata/name.
func fixture(t *testing.T, name string) anthropictest.Reply {
	t.Helper()
	r, err := anthropictest.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// result is everything one range over a stream produced.
type result struct {
	texts  []string
	calls  []model.ToolCall
	finals []model.Chunk // chunks with a finish reason
	err    error
	after  int // values yielded after an error
}

func collect(ctx context.Context, m model.Model, req *model.Request) result {
	var r result
	for c, err := range m.Stream(ctx, req) {
		if r.err != nil {
			r.after++
		}
		if err != nil {
			r.err = err
			continue
		}
		if c.Text != "" {
			r.texts = append(r.texts, c.Text)
		}
		r.calls = append(r.calls, c.ToolCalls...)
		if c.FinishReason != "" {
			r.finals = append(r.finals, c)
		}
	}
	return r
}

// final checks that r ended with one final chunk and no error, and returns it.
func (r result) final(t *testing.T) model.Chunk {
	t.Helper()
	if r.err != nil {
		t.Fatalf("stream error: %v", r.err)
	}
	if len(r.finals) != 1 {
		t.Fatalf("%d final chunks, want 1", len(r.finals))
	}
	return r.finals[0]
}

var hello = &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: "Hi"}}}

func TestStreamFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		texts  []string
		calls  []model.ToolCall
		finish model.FinishReason
		usage  model.Usage
	}{
		{
			file: "text.sse", texts: []string{"Hello", " there", "!"},
			finish: model.FinishStop, usage: model.Usage{InputTokens: 11, OutputTokens: 4, TotalTokens: 15},
		},
		{
			file:  "tool_use.sse",
			texts: []string{"I'll check the current weather in Paris for you."},
			calls: []model.ToolCall{{
				ID: "toolu_01NRLabsLyVHZPKxbKvkfSMn", Name: "get_weather",
				Arguments: json.RawMessage(`{"location": "Paris"}`),
			}},
			finish: model.FinishToolCalls, usage: model.Usage{InputTokens: 377, OutputTokens: 65, TotalTokens: 442},
		},
		{
			// Pings, a thinking block, a citations delta, an unknown event and an event
			// without an event: line are all skipped; escapes are decoded.
			file: "pings_unknown.sse", texts: []string{"Hi", "! \"Quoted\"\né😀 ✓"},
			finish: model.FinishStop, usage: model.Usage{InputTokens: 11, OutputTokens: 30, TotalTokens: 41},
		},
		{
			file: "empty.sse", finish: model.FinishStop,
			usage: model.Usage{InputTokens: 11, OutputTokens: 1, TotalTokens: 12},
		},
		{
			// Invalid input is passed on as the model wrote it; no input at all is {}.
			file: "invalid_tool_input.sse",
			calls: []model.ToolCall{
				{ID: "toolu_01NRLabsLyVHZPKxbKvkfSMn", Name: "get_weather", Arguments: json.RawMessage(`{"location": "Paris", "unit": celsius}`)},
				{ID: "toolu_01A09q90qw90lq917835lq9", Name: "get_time", Arguments: json.RawMessage(`{}`)},
			},
			finish: model.FinishToolCalls, usage: model.Usage{InputTokens: 11, OutputTokens: 40, TotalTokens: 51},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, fixture(t, tt.file))
			r := collect(t.Context(), newModel(srv), hello)
			last := r.final(t)
			if !reflect.DeepEqual(r.texts, tt.texts) {
				t.Errorf("texts = %q, want %q", r.texts, tt.texts)
			}
			if !equalCalls(r.calls, tt.calls) {
				t.Errorf("tool calls = %s, want %s", show(r.calls), show(tt.calls))
			}
			if last.FinishReason != tt.finish {
				t.Errorf("finish = %q, want %q", last.FinishReason, tt.finish)
			}
			if last.Model != "claude-sonnet-4-5" { // message_start's model
				t.Errorf("model = %q, want message_start's", last.Model)
			}
			if last.Usage == nil || *last.Usage != tt.usage {
				t.Errorf("usage = %+v, want %+v", last.Usage, tt.usage)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

func equalCalls(a, b []model.ToolCall) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Name != b[i].Name || string(a[i].Arguments) != string(b[i].Arguments) {
			return false
		}
	}
	return true
}

func show(calls []model.ToolCall) string {
	var b strings.Builder
	for _, c := range calls {
		b.WriteString(c.ID + " " + c.Name + " " + string(c.Arguments) + "; ")
	}
	return b.String()
}

// TestToolUseRoundTrip answers a tool call and checks the second request's body
// against the shapes of PROTOCOLS.md §3.2.
func TestToolUseRoundTrip(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fixture(t, "tool_use.sse"), fixture(t, "tool_use_answer.sse"))
	m := newModel(srv, anthropic.WithMaxTokens(1024))
	req := &model.Request{
		Instructions: "be brief",
		Messages:     []model.Message{{Role: model.RoleUser, Content: "weather in Paris?"}},
		Tools: []tool.Definition{{
			Name: "get_weather", Description: "Get weather",
			Parameters: json.RawMessage(`{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}`),
		}},
	}
	first := collect(t.Context(), m, req)
	first.final(t)
	if len(first.calls) != 1 {
		t.Fatalf("first turn: %d tool calls, want 1", len(first.calls))
	}
	req.Messages = append(req.Messages,
		model.Message{Role: model.RoleAssistant, Content: strings.Join(first.texts, ""), ToolCalls: first.calls},
		model.Message{Role: model.RoleTool, ToolCallID: first.calls[0].ID, ToolName: "get_weather", Content: "sunny, 22°C"},
	)
	second := collect(t.Context(), m, req)
	if got := second.final(t).FinishReason; got != model.FinishStop {
		t.Errorf("second turn finish = %q, want stop", got)
	}
	if got := strings.Join(second.texts, ""); got != "It is sunny in Paris, 22°C." {
		t.Errorf("second turn text = %q", got)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(reqs))
	}
	want := `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,
	 "system":"be brief",
	 "messages":[
	  {"role":"user","content":[{"type":"text","text":"weather in Paris?"}]},
	  {"role":"assistant","content":[
	    {"type":"text","text":"I'll check the current weather in Paris for you."},
	    {"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{"location":"Paris"}}]},
	  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","content":"sunny, 22°C"}]}],
	 "tools":[{"name":"get_weather","description":"Get weather","input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}]}`
	assertJSON(t, reqs[1].Body, want)
}

// assertJSON checks that got and want are the same JSON value.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		wb, _ := json.Marshal(w)
		t.Errorf("body\n got %s\nwant %s", got, wb)
	}
}

// TestMessageMapping checks how a conversation maps onto the API's alternating
// messages: tool results grouped, first, with is_error; invalid tool arguments sent
// as {}; empty messages left out.
func TestMessageMapping(t *testing.T) {
	t.Parallel()
	call := func(id, args string) model.ToolCall {
		return model.ToolCall{ID: id, Name: "f", Arguments: json.RawMessage(args)}
	}
	tests := []struct {
		name string
		msgs []model.Message
		want string // the messages array
	}{
		{
			name: "parallel tool results grouped",
			msgs: []model.Message{
				{Role: model.RoleUser, Content: "go"},
				{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{call("t1", `{"a":1}`), call("t2", `{}`)}},
				{Role: model.RoleTool, ToolCallID: "t1", Content: "one"},
				{Role: model.RoleTool, ToolCallID: "t2", Content: "boom", IsError: true},
				{Role: model.RoleUser, Content: "and then?"},
			},
			want: `[{"role":"user","content":[{"type":"text","text":"go"}]},
			 {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}},{"type":"tool_use","id":"t2","name":"f","input":{}}]},
			 {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"one"},
			   {"type":"tool_result","tool_use_id":"t2","content":"boom","is_error":true},
			   {"type":"text","text":"and then?"}]}]`,
		},
		{
			name: "tool arguments that are not an object",
			msgs: []model.Message{
				{Role: model.RoleUser, Content: "go"},
				{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{
					call("t1", `{"location": "Paris", "unit": celsius}`), call("t2", ``), call("t3", `null`),
					call("t4", `[1,2]`), call("t5", `"x"`), call("t6", ` {"ok":true} `),
				}},
				{Role: model.RoleTool, ToolCallID: "t1", Content: "r"}, {Role: model.RoleTool, ToolCallID: "t2", Content: "r"},
				{Role: model.RoleTool, ToolCallID: "t3", Content: "r"}, {Role: model.RoleTool, ToolCallID: "t4", Content: "r"},
				{Role: model.RoleTool, ToolCallID: "t5", Content: "r"}, {Role: model.RoleTool, ToolCallID: "t6", Content: "r"},
			},
			want: `[{"role":"user","content":[{"type":"text","text":"go"}]},
			 {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}},{"type":"tool_use","id":"t2","name":"f","input":{}},
			   {"type":"tool_use","id":"t3","name":"f","input":{}},{"type":"tool_use","id":"t4","name":"f","input":{}},
			   {"type":"tool_use","id":"t5","name":"f","input":{}},{"type":"tool_use","id":"t6","name":"f","input":{"ok":true}}]},
			 {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"},{"type":"tool_result","tool_use_id":"t2","content":"r"},
			   {"type":"tool_result","tool_use_id":"t3","content":"r"},{"type":"tool_result","tool_use_id":"t4","content":"r"},
			   {"type":"tool_result","tool_use_id":"t5","content":"r"},{"type":"tool_result","tool_use_id":"t6","content":"r"}]}]`,
		},
		{
			name: "empty messages left out, same roles merged",
			msgs: []model.Message{
				{Role: model.RoleUser, Content: "a"},
				{Role: model.RoleUser, Content: ""},
				{Role: model.RoleUser, Content: "b"},
				{Role: model.RoleAssistant, Content: ""},
			},
			want: `[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The fake refuses what the API refuses (tool inputs that are not objects,
			// tool results not first or without their tool_use), so success shows the
			// body is acceptable.
			srv := newServer(t, anthropictest.Text("ok"))
			r := collect(t.Context(), newModel(srv), &model.Request{Messages: tt.msgs})
			r.final(t)
			var body struct{ Messages json.RawMessage }
			if err := json.Unmarshal(srv.Requests()[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			assertJSON(t, body.Messages, tt.want)
		})
	}
}

func TestUnknownRole(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	req := &model.Request{Messages: []model.Message{{Role: "system", Content: "x"}}}
	r := collect(t.Context(), newModel(srv), req)
	if r.err == nil || !strings.Contains(r.err.Error(), `unknown role "system"`) {
		t.Errorf("error = %v, want an unknown role", r.err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        []anthropic.Option
		apiKey      string // the x-api-key header
		auth        string // the Authorization header
		version     string
		temperature bool // the body has a temperature
	}{
		{
			name:   "default version",
			opts:   []anthropic.Option{anthropic.WithTemperature(0.5)},
			apiKey: "sk-ant-test", version: "2023-06-01", temperature: true,
		},
		{
			name:    "2026-10-21",
			opts:    []anthropic.Option{anthropic.WithAPIVersion(anthropic.APIVersion20261021), anthropic.WithTemperature(0.5)},
			auth:    "Bearer sk-ant-test",
			version: "2026-10-21",
		},
		{
			name:    "explicit 2023-06-01",
			opts:    []anthropic.Option{anthropic.WithAPIVersion("2023-06-01")},
			apiKey:  "sk-ant-test",
			version: "2023-06-01",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, anthropictest.Text("ok"))
			opts := append(tt.opts, anthropic.WithHeader("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
				anthropic.WithHeader("x-api-key", "overridden"))
			collect(t.Context(), newModel(srv, opts...), hello).final(t)
			req := srv.Requests()[0]
			h := req.Header
			check := func(key, want string) {
				t.Helper()
				if got := h.Get(key); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			check("x-api-key", tt.apiKey)
			check("Authorization", tt.auth)
			check("anthropic-version", tt.version)
			check("Content-Type", "application/json")
			check("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")
			if req.Method != http.MethodPost || req.Path != "/v1/messages" {
				t.Errorf("request %s %s, want POST /v1/messages", req.Method, req.Path)
			}
			if got := req.Params.Temperature != nil; got != tt.temperature {
				t.Errorf("temperature sent = %v, want %v", got, tt.temperature)
			}
			if req.Params.TopP != nil || req.Params.TopK != nil {
				t.Error("top_p or top_k sent")
			}
			if req.Params.MaxTokens != anthropic.DefaultMaxTokens || !req.Params.Stream || req.Params.Model != "claude-sonnet-4-5" {
				t.Errorf("params = %+v", req.Params)
			}
		})
	}
}

func TestErrorEventMidStream(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fixture(t, "error_overloaded.sse"))
	r := collect(t.Context(), newModel(srv), hello)
	if want := []string{"Once upon", " a time"}; !reflect.DeepEqual(r.texts, want) {
		t.Errorf("texts = %q, want %q", r.texts, want)
	}
	if !errors.Is(r.err, model.ErrServer) {
		t.Fatalf("error = %v, want one wrapping model.ErrServer", r.err)
	}
	var apiErr *model.APIError
	if !errors.As(r.err, &apiErr) || apiErr.Type != "overloaded_error" || apiErr.Message != "Overloaded" || apiErr.StatusCode != 0 {
		t.Errorf("API error = %+v, want overloaded_error in the stream", apiErr)
	}
	if want := srv.Requests()[0].RequestID; apiErr != nil && apiErr.RequestID != want {
		t.Errorf("request id = %q, want %q", apiErr.RequestID, want)
	}
	if len(r.finals) != 0 || r.after != 0 {
		t.Errorf("%d final chunks and %d values after the error, want none", len(r.finals), r.after)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1 (no retry after content)", n)
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		replies  []anthropictest.Reply
		is       error // nil: success
		contains string
		requests int
	}{
		{
			name:     "401",
			replies:  []anthropictest.Reply{anthropictest.Unauthorized()},
			is:       model.ErrAuth,
			contains: "API key rejected: HTTP 401 authentication_error: invalid x-api-key",
			requests: 1,
		},
		{
			name:     "429 then success",
			replies:  []anthropictest.Reply{anthropictest.RateLimited(0), anthropictest.Text("ok")},
			requests: 2,
		},
		{
			name:     "529 exhausted",
			replies:  []anthropictest.Reply{anthropictest.Overloaded(), anthropictest.Overloaded(), anthropictest.Overloaded()},
			is:       model.ErrServer,
			contains: "after 3 attempts: server error: HTTP 529 overloaded_error: Overloaded",
			requests: 3,
		},
		{
			name:     "500 exhausted",
			replies:  []anthropictest.Reply{anthropictest.InternalError(), anthropictest.InternalError(), anthropictest.InternalError()},
			is:       model.ErrServer,
			contains: "HTTP 500 api_error: Internal server error",
			requests: 3,
		},
		{
			name:     "529 then success",
			replies:  []anthropictest.Reply{anthropictest.Overloaded(), anthropictest.Text("ok")},
			requests: 2,
		},
		{
			name:     "400",
			replies:  []anthropictest.Reply{anthropictest.Error(400, "invalid_request_error", "max_tokens: 999999 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4-5")},
			is:       model.ErrBadRequest,
			contains: "max_tokens: 999999 > 64000, which is the maximum allowed",
			requests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.replies...)
			var retries atomic.Int32
			policy := fast
			policy.OnRetry = func(int, time.Duration, error) { retries.Add(1) }
			r := collect(t.Context(), newModel(srv, anthropic.WithRetry(policy)), hello)
			if tt.is == nil {
				r.final(t)
				if !reflect.DeepEqual(r.texts, []string{"ok"}) {
					t.Errorf("texts = %q", r.texts)
				}
			} else {
				if !errors.Is(r.err, tt.is) {
					t.Errorf("error = %v, want one wrapping %v", r.err, tt.is)
				}
				if r.err != nil && !strings.Contains(r.err.Error(), tt.contains) {
					t.Errorf("error = %q, want it to contain %q", r.err, tt.contains)
				}
				var apiErr *model.APIError
				if !errors.As(r.err, &apiErr) || apiErr.RequestID == "" {
					t.Errorf("error %v has no API error with a request id", r.err)
				}
			}
			if n := len(srv.Requests()); n != tt.requests {
				t.Errorf("server saw %d requests, want %d", n, tt.requests)
			}
			if n := int(retries.Load()); n != tt.requests-1 {
				t.Errorf("%d retries, want %d", n, tt.requests-1)
			}
		})
	}
}

// TestStreamCut checks that a stream that ends early is an error, and is never
// retried once it has started.
func TestStreamCut(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.Join("testdata", "text.sse"))
	if err != nil {
		t.Fatal(err)
	}
	withoutStop := strings.TrimSuffix(string(text), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	tests := []struct {
		name  string
		reply anthropictest.Reply
		texts []string
		is    error
	}{
		{"dropped after a delta", anthropictest.Dropped(string(text), 4), []string{"Hello"}, io.ErrUnexpectedEOF},
		{"dropped before any event", anthropictest.Dropped(string(text), 0), nil, io.ErrUnexpectedEOF},
		{"clean end before message_stop", anthropictest.SSE(withoutStop), []string{"Hello", " there", "!"}, nil},
		{"cut inside an event", anthropictest.SSE(string(text[:len(text)-5])), []string{"Hello", " there", "!"}, nil},
		{"no event lines", anthropictest.SSE(dropEventLines(string(text))), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.reply, anthropictest.Text("a retry must not be made"))
			r := collect(t.Context(), newModel(srv), hello)
			if !reflect.DeepEqual(r.texts, tt.texts) {
				t.Errorf("texts = %q, want %q", r.texts, tt.texts)
			}
			if !errors.Is(r.err, model.ErrStreamCut) {
				t.Errorf("error = %v, want one wrapping model.ErrStreamCut", r.err)
			}
			if tt.is != nil && !errors.Is(r.err, tt.is) {
				t.Errorf("error = %v, want one wrapping %v", r.err, tt.is)
			}
			if len(r.finals) != 0 {
				t.Errorf("a final chunk was yielded: %+v", r.finals)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("server saw %d requests, want exactly 1", n)
			}
		})
	}
}

// dropEventLines removes the event: lines of a stream, as some servers send it.
func dropEventLines(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "event:") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestCancelSlowStream(t *testing.T) {
	t.Parallel()
	start := anthropictest.NewStream(anthropictest.MessageID, anthropictest.Model, 11).StartText().TextDelta("Once")
	srv := newServer(t, anthropictest.Hanging(start.String()))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	done := make(chan result, 1)
	go func() {
		var r result
		for c, err := range newModel(srv).Stream(ctx, hello) {
			if err != nil {
				r.err = err
				continue
			}
			r.texts = append(r.texts, c.Text)
			cancel() // the first chunk has arrived: the stream now hangs
		}
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(hangTimeout):
		t.Fatal("Stream did not return after its context was cancelled")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", r.err)
	}
	if !reflect.DeepEqual(r.texts, []string{"Once"}) {
		t.Errorf("texts = %q", r.texts)
	}
	select {
	case <-srv.Cancelled():
	case <-time.After(hangTimeout):
		t.Fatal("the server never saw the request's context cancelled")
	}
}

func TestCancelBeforeResponse(t *testing.T) {
	t.Parallel()
	srv := newServer(t, anthropictest.Text("never read"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := collect(ctx, newModel(srv), hello)
	if !errors.Is(r.err, context.Canceled) || len(r.texts) != 0 {
		t.Errorf("texts %q, error %v; want none and context.Canceled", r.texts, r.err)
	}
}

func TestConsumerStops(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fixture(t, "text.sse"))
	n := 0
	for _, err := range newModel(srv).Stream(t.Context(), hello) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("%d chunks before break", n)
	}
}

func TestMissingKey(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "")
	srv := newServer(t, anthropictest.Text("never sent"))
	m := anthropic.New("claude-sonnet-4-5", anthropic.WithBaseURL(srv.URL), anthropic.WithHTTPClient(srv.Client()))
	r := collect(t.Context(), m, hello)
	if !errors.Is(r.err, anthropic.ErrNoAPIKey) {
		t.Errorf("error = %v, want ErrNoAPIKey", r.err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestEnvironment(t *testing.T) {
	srv := newServer(t, anthropictest.Text("ok"))
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-env")
	t.Setenv("ANTHROPIC_BASE_URL", srv.URL+"/")
	m := anthropic.New("claude-haiku-4-5", anthropic.WithHTTPClient(srv.Client()))
	collect(t.Context(), m, hello).final(t)
	if got := srv.Requests()[0].Header.Get("x-api-key"); got != "sk-ant-env" {
		t.Errorf("x-api-key = %q", got)
	}
	if m.Provider() != "anthropic" || m.ModelID() != "claude-haiku-4-5" {
		t.Errorf("Provider, ModelID = %q, %q", m.Provider(), m.ModelID())
	}
}

func TestNotEventStream(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","content":[]}`)
	}))
	defer srv.Close()
	m := anthropic.New("claude-sonnet-4-5", anthropic.WithBaseURL(srv.URL), anthropic.WithAPIKey("k"), anthropic.WithHTTPClient(srv.Client()))
	r := collect(t.Context(), m, hello)
	if !errors.Is(r.err, anthropic.ErrNotEventStream) || !strings.Contains(r.err.Error(), "application/json") {
		t.Errorf("error = %v, want ErrNotEventStream naming the content type", r.err)
	}
}

// TestFixturesMatchBuilder checks that anthropictest.Stream writes the fixtures'
// bytes, so that tests built with it see what the fixtures show.
func TestFixturesMatchBuilder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		got  string
	}{
		{"text.sse", anthropictest.Text("Hello", " there", "!").Body},
		{"tool_use.sse", anthropictest.NewStream("msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-5", 377).
			StartText().Ping().TextDelta("I'll check the current weather in Paris for you.").StopBlock().
			ToolUseBlock("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", "", `{"locati`, `on": "Paris"}`).
			End("tool_use", 65).String()},
	}
	for _, tt := range tests {
		want, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if tt.got != string(want) {
			t.Errorf("%s: builder wrote\n%s\nwant\n%s", tt.file, tt.got, want)
		}
	}
}
