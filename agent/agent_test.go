package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// within fails the test if ch is not closed soon. It is a hang detector, not a
// timing assertion: the bound is far above anything a working run needs.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30s", what)
	}
}

// collect ranges over a stream and returns its events.
func collect(t *testing.T, a *agent.Agent, ctx context.Context, input string, opts ...run.Option) []*run.Event {
	t.Helper()
	var evs []*run.Event
	for ev, err := range a.Stream(ctx, input, opts...) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func types(evs []*run.Event) []run.EventType {
	ts := make([]run.EventType, len(evs))
	for i, ev := range evs {
		ts[i] = ev.Event
	}
	return ts
}

func terminals(evs []*run.Event, runID string) []*run.Event {
	var out []*run.Event
	for _, ev := range evs {
		if ev.Event.Terminal() && ev.RunID == runID {
			out = append(out, ev)
		}
	}
	return out
}

func TestRunStreamsContentAndCompletes(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "Echo Agent", Model: scripted.New("hello there world")}
	evs := collect(t, a, t.Context(), "hi", run.WithSessionID("s1"))
	want := []run.EventType{run.EventRunStarted, run.EventModelRequestStarted, run.EventRunContent, run.EventRunContent, run.EventRunContent,
		run.EventModelRequestCompleted, run.EventRunContentCompleted, run.EventRunCompleted}
	if got := types(evs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i, ev := range evs {
		if ev.EventIndex != i || ev.RunID != evs[0].RunID || ev.AgentID != "echo-agent" || ev.SessionID != "s1" {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	if evs[0].Detail == nil || evs[0].Detail.ModelProvider != "scripted" {
		t.Errorf("RunStarted detail = %+v, want model_provider scripted", evs[0].Detail)
	}
	last := evs[len(evs)-1]
	if last.Content != "hello there world" || last.Metrics == nil || last.Metrics.OutputTokens == 0 {
		t.Errorf("RunCompleted = %+v", last)
	}
	if evs[1].Detail != evs[0].Detail {
		t.Errorf("%s detail = %+v, want the model's", evs[1].Event, evs[1].Detail)
	}
	// The request's end says, besides, what answered and why it stopped.
	if d := evs[5].Detail; d == nil || d.Model != "scripted" || d.ModelProvider != "scripted" || d.ResponseModel != "scripted" || d.FinishReason != "stop" {
		t.Errorf("%s detail = %+v, want the model's, response_model scripted, finish_reason stop", evs[5].Event, d)
	}
	req := evs[5].Metrics
	if req == nil || req.InputTokens != last.Metrics.InputTokens || req.OutputTokens != last.Metrics.OutputTokens ||
		req.TotalTokens != last.Metrics.TotalTokens || req.Duration <= 0 || req.TimeToFirstToken <= 0 || req.TimeToFirstToken > req.Duration {
		t.Errorf("ModelRequestCompleted metrics = %+v, run metrics %+v", req, last.Metrics)
	}
}

func TestRunReturnsOutput(t *testing.T) {
	t.Parallel()
	a := &agent.Agent{Name: "a", Model: scripted.New("one two")}
	out, err := a.Run(t.Context(), "hi")
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != run.StatusCompleted || out.Content != "one two" || out.Input != "hi" || out.AgentID != "a" {
		t.Fatalf("output = %+v", out)
	}
	if out.Metrics.Duration <= 0 || out.Metrics.TimeToFirstToken <= 0 {
		t.Errorf("metrics = %+v", out.Metrics)
	}
}

type weatherArgs struct {
	City string `json:"city"`
}

func TestToolLoop(t *testing.T) {
	t.Parallel()
	var seen []model.Message
	var mu sync.Mutex
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		mu.Lock()
		seen = req.Messages
		mu.Unlock()
		if len(req.Messages) == 1 {
			return scripted.Turn{Text: "Looking. ", ToolCalls: []model.ToolCall{
				{ID: "c1", Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)},
			}}
		}
		return scripted.Turn{Text: "It is " + req.Messages[len(req.Messages)-1].Content}
	}}
	weather := tool.Func("weather", "Weather in a city", func(ctx context.Context, a weatherArgs) (string, error) {
		return "cold in " + a.City, nil
	})
	a := &agent.Agent{Name: "w", Model: m, Tools: []tool.Tool{weather}}
	evs := collect(t, a, t.Context(), "weather?")
	var started, completed *run.Event
	for _, ev := range evs {
		switch ev.Event {
		case run.EventToolCallStarted:
			started = ev
		case run.EventToolCallCompleted:
			completed = ev
		}
	}
	if started == nil || completed == nil {
		t.Fatalf("no tool events in %v", types(evs))
	}
	if completed.Tool.Result != "cold in Oslo" || completed.Tool.ToolName != "weather" || completed.Tool.ToolCallID != "c1" {
		t.Errorf("ToolCallCompleted.tool = %+v", completed.Tool)
	}
	last := evs[len(evs)-1]
	if last.Event != run.EventRunCompleted || last.Content != "Looking. It is cold in Oslo" {
		t.Errorf("last = %s %q", last.Event, last.Content)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[1].Role != model.RoleAssistant || len(seen[1].ToolCalls) != 1 || seen[2].Role != model.RoleTool || seen[2].ToolCallID != "c1" {
		t.Errorf("second request's messages = %+v", seen)
	}
}

// TestToolFailuresReachTheModel checks that whatever goes wrong in a tool call becomes
// a tool-error result that the model reads, and the run goes on.
func TestToolFailuresReachTheModel(t *testing.T) {
	t.Parallel()
	boom := tool.Func("boom", "fails", func(ctx context.Context, a weatherArgs) (string, error) {
		return "", errors.New("no weather today")
	})
	panicky := tool.Func("panicky", "panics", func(ctx context.Context, a weatherArgs) (string, error) {
		panic("kaboom")
	})
	tests := []struct {
		name string
		call model.ToolCall
		want string
	}{
		{"error", model.ToolCall{Name: "boom", Arguments: json.RawMessage(`{"city":"x"}`)}, "no weather today"},
		{"panic", model.ToolCall{Name: "panicky", Arguments: json.RawMessage(`{"city":"x"}`)}, "kaboom"},
		{"unknown tool", model.ToolCall{Name: "nope", Arguments: json.RawMessage(`{}`)}, `unknown tool "nope"`},
		{"bad arguments", model.ToolCall{Name: "boom", Arguments: json.RawMessage(`{"city":3}`)}, "invalid arguments"},
		{"broken json", model.ToolCall{Name: "boom", Arguments: json.RawMessage(`{"city":`)}, "invalid arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var toolMsg model.Message
			m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
				if len(req.Messages) == 1 {
					return scripted.Turn{ToolCalls: []model.ToolCall{tt.call}}
				}
				toolMsg = req.Messages[2]
				return scripted.Turn{Text: "done"}
			}}
			a := &agent.Agent{Name: "t", Model: m, Tools: []tool.Tool{boom, panicky}}
			evs := collect(t, a, t.Context(), "go")
			if last := evs[len(evs)-1]; last.Event != run.EventRunCompleted {
				t.Fatalf("run ended %s: %s", last.Event, last.Error)
			}
			if !toolMsg.IsError || !strings.Contains(toolMsg.Content, tt.want) {
				t.Errorf("tool message = %+v, want an error containing %q", toolMsg, tt.want)
			}
			var errEv *run.Event
			for _, ev := range evs {
				if ev.Event == run.EventToolCallError {
					errEv = ev
				}
				if _, err := json.Marshal(ev); err != nil {
					t.Errorf("%s does not encode: %v", ev.Event, err)
				}
			}
			if errEv == nil || !errEv.Tool.IsError || !strings.Contains(errEv.Error, tt.want) {
				t.Errorf("ToolCallError event = %+v", errEv)
			}
		})
	}
}

// TestParallelToolCalls proves the calls of one turn run at once: each tool waits for
// the other to have started, which only succeeds if they run concurrently.
func TestParallelToolCalls(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	wg.Add(2)
	barrier := func(ctx context.Context, a weatherArgs) (string, error) {
		wg.Done()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return "ok " + a.City, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	m := &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{
			{Name: "a", Arguments: json.RawMessage(`{"city":"1"}`)},
			{Name: "b", Arguments: json.RawMessage(`{"city":"2"}`)},
		}},
		{Text: "both done"},
	}}
	a := &agent.Agent{Name: "p", Model: m, Tools: []tool.Tool{
		tool.Func("a", "", barrier), tool.Func("b", "", barrier),
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // hang detector
	defer cancel()
	out, err := a.Run(ctx, "go")
	if err != nil || out.Content != "both done" {
		t.Fatalf("Run = %+v, %v", out, err)
	}
}

func TestMaxIterations(t *testing.T) {
	t.Parallel()
	m := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "a", Arguments: json.RawMessage(`{"city":"x"}`)}}}}}
	a := &agent.Agent{Name: "loop", Model: m, MaxIterations: 3, Tools: []tool.Tool{
		tool.Func("a", "", func(ctx context.Context, a weatherArgs) (string, error) { return "again", nil }),
	}}
	out, err := a.Run(t.Context(), "go")
	if !errors.Is(err, agent.ErrMaxIterations) || out.Status != run.StatusError || !strings.Contains(out.Error, "iteration bound") {
		t.Fatalf("Run = %+v, %v; want ERROR about the iteration bound", out, err)
	}
}

func TestInvalidAgents(t *testing.T) {
	t.Parallel()
	ok := tool.Func("ok", "", func(ctx context.Context, a weatherArgs) (string, error) { return "", nil })
	tests := []struct {
		name  string
		agent *agent.Agent
		want  string
	}{
		{"nil model", &agent.Agent{Name: "a"}, "no model"},
		{"nil tool", &agent.Agent{Name: "a", Model: scripted.New("x"), Tools: []tool.Tool{nil}}, "nil"},
		{"duplicate tools", &agent.Agent{Name: "a", Model: scripted.New("x"), Tools: []tool.Tool{ok, ok}}, "two tools"},
		{"bad tool name", &agent.Agent{Name: "a", Model: scripted.New("x"), Tools: []tool.Tool{
			tool.Func("bad name!", "", func(ctx context.Context, a weatherArgs) (string, error) { return "", nil }),
		}}, "bad name!"},
		{"negative bound", &agent.Agent{Name: "a", Model: scripted.New("x"), MaxIterations: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.agent.Run(t.Context(), "x")
			if !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			for ev, err := range tt.agent.Stream(t.Context(), "x") {
				if ev != nil || !errors.Is(err, run.ErrInvalid) {
					t.Errorf("Stream yielded %v, %v", ev, err)
				}
			}
		})
	}
}
