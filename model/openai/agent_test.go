package openai_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/openai"
	"github.com/kern-dev/kern/model/openai/openaitest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

type cityArgs struct {
	City string `json:"city" jsonschema:"the city"`
}

// TestAgent runs an agent on each API against the fake server: a tool round trip,
// then a call whose arguments are not JSON, which the agent reports to the model as
// a tool error.
func TestAgent(t *testing.T) {
	t.Parallel()
	badArgs := map[string]string{
		"responses": "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"fc_9\",\"type\":\"function_call\",\"call_id\":\"call_9\",\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\"}}\n\n",
		"chat": "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
	}
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv, m := a.setup(t,
				openaitest.Fixture(a.toolCall), openaitest.Fixture(a.text),
				openaitest.Stream(badArgs[a.name]), openaitest.Fixture(a.text))
			var cities []string
			weather := tool.Func("get_weather", "Get the weather in a city", func(ctx context.Context, args cityArgs) (string, error) {
				cities = append(cities, args.City)
				return "sunny", nil
			})
			ag := &agent.Agent{Name: "Weather", Model: m, Tools: []tool.Tool{weather}, Instructions: "be brief"}
			for range 2 {
				out, err := ag.Run(t.Context(), "weather in Paris?")
				if err != nil || out.Content != "Hello! How can I help?" {
					t.Fatalf("output %q, error %v", out.Content, err)
				}
			}
			if len(cities) != 1 || cities[0] != "Paris" {
				t.Errorf("tool called with %q", cities)
			}
			reqs := srv.Requests()
			if len(reqs) != 4 {
				t.Fatalf("%d requests", len(reqs))
			}
			if body := string(reqs[1].Raw); !strings.Contains(body, `sunny`) {
				t.Errorf("tool result not sent: %s", body)
			}
			if body := string(reqs[3].Raw); !strings.Contains(body, `{\"city\":`) || !strings.Contains(body, "invalid") {
				t.Errorf("bad arguments or their tool error not sent back: %s", body)
			}
		})
	}
}

// canned is an http.RoundTripper that answers every request with the same event
// stream, without a network, so that benchmarks measure the client.
type canned struct{ body []byte }

var sseHeader = http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}}

func (c canned) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: sseHeader, Body: io.NopCloser(bytes.NewReader(c.body)), Request: req}, nil
}

// benchDeltas is the number of text deltas of a benchmark's stream.
const benchDeltas = 256

// benchBody is a fixture's stream with its text deltas replaced by n copies of the
// first one.
func benchBody(fixture string, n int, isDelta func(ev string) bool) []byte {
	var b strings.Builder
	wrote := false
	for ev := range strings.SplitAfterSeq(string(openaitest.FixtureBytes(fixture)), "\n\n") {
		if !isDelta(ev) {
			b.WriteString(ev)
			continue
		}
		if !wrote {
			b.WriteString(strings.Repeat(ev, n))
			wrote = true
		}
	}
	return []byte(b.String())
}

func benchModel(api string) model.Model {
	var body []byte
	if api == "responses" {
		body = benchBody("responses_text.sse", benchDeltas, func(ev string) bool {
			return strings.HasPrefix(ev, "event: response.output_text.delta\n")
		})
	} else {
		body = benchBody("chat_text.sse", benchDeltas, func(ev string) bool {
			return strings.Contains(ev, `"delta":{"content":"`)
		})
	}
	opts := []openai.Option{openai.WithBaseURL("http://canned/v1"), openai.WithHTTPClient(&http.Client{Transport: canned{body}})}
	if api == "responses" {
		return openai.NewResponses("gpt-5.2", opts...)
	}
	return openai.NewChat("gpt-4.1-mini", opts...)
}

// perChunk reports the time and allocations of each text chunk of run, which returns
// how many it received.
func perChunk(b *testing.B, run func() int) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	chunks := 0
	for b.Loop() {
		if n := run(); n != benchDeltas {
			b.Fatalf("%d chunks, want %d", n, benchDeltas)
		}
		chunks += benchDeltas
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(chunks), "ns/chunk")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(chunks), "allocs/chunk")
}

// streamModel ranges over one stream of m and counts its text chunks.
func streamModel(b *testing.B, m model.Model) int {
	n := 0
	for c, err := range m.Stream(context.Background(), ask("hi")) {
		if err != nil {
			b.Fatal(err)
		}
		if c.Text != "" {
			n++
		}
	}
	return n
}

// streamAgent ranges over one run of an agent and counts its content events.
func streamAgent(b *testing.B, a *agent.Agent) int {
	n := 0
	for ev, err := range a.Stream(context.Background(), "hi") {
		if err != nil {
			b.Fatal(err)
		}
		if ev.Event == run.EventRunContent {
			n++
		}
	}
	return n
}

// BenchmarkResponsesStream parses a Responses stream of text deltas from memory
// (target ≤ 2 µs and ≤ 4 allocations per chunk through an agent).
func BenchmarkResponsesStream(b *testing.B) {
	m := benchModel("responses")
	perChunk(b, func() int { return streamModel(b, m) })
}

// BenchmarkChatStream parses a Chat Completions stream of text deltas from memory.
func BenchmarkChatStream(b *testing.B) {
	m := benchModel("chat")
	perChunk(b, func() int { return streamModel(b, m) })
}

// BenchmarkAgentResponsesStream runs an agent on a Responses stream of text deltas.
func BenchmarkAgentResponsesStream(b *testing.B) {
	a := &agent.Agent{Name: "a", Model: benchModel("responses")}
	perChunk(b, func() int { return streamAgent(b, a) })
}

// BenchmarkAgentChatStream runs an agent on a Chat Completions stream of text deltas.
func BenchmarkAgentChatStream(b *testing.B) {
	a := &agent.Agent{Name: "a", Model: benchModel("chat")}
	perChunk(b, func() int { return streamAgent(b, a) })
}
