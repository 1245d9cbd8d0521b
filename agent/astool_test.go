package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

// caller returns an agent whose model calls the tool named name with input, then
// answers "done".
func caller(name, input string, tools ...tool.Tool) *agent.Agent {
	args, _ := json.Marshal(map[string]string{"input": input})
	return &agent.Agent{Name: "Lead", Tools: tools, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: name, Arguments: args}}},
		{Text: "done"},
	}}}
}

// byRun groups events by run id, in order.
func byRun(evs []*run.Event) map[string][]*run.Event {
	m := map[string][]*run.Event{}
	for _, ev := range evs {
		m[ev.RunID] = append(m[ev.RunID], ev)
	}
	return m
}

func checkOneTerminalEach(t *testing.T, evs []*run.Event, top string) {
	t.Helper()
	for id, run := range byRun(evs) {
		if n := len(terminals(run, id)); n != 1 {
			t.Errorf("run %s: %d terminal events: %v", id, n, types(run))
		}
	}
	if last := evs[len(evs)-1]; last.RunID != top || !last.Event.Terminal() {
		t.Errorf("stream ends with %s of %s, want the top-level run's terminal event", last.Event, last.RunID)
	}
}

func TestAgentAsTool(t *testing.T) {
	t.Parallel()
	inner := &agent.Agent{Name: "Researcher", Model: scripted.New("dragons fly")}
	outer := caller("researcher", "dragons?", agent.AsTool(inner, "Finds facts"))
	id := run.NewID()
	evs := collect(t, outer, t.Context(), "go", run.WithID(id), run.WithSessionID("s"))

	want := "RunStarted ModelRequestStarted ModelRequestCompleted ToolCallStarted " +
		"RunStarted ModelRequestStarted RunContent RunContent ModelRequestCompleted RunContentCompleted RunCompleted " +
		"ToolCallCompleted ModelRequestStarted RunContent ModelRequestCompleted RunContentCompleted RunCompleted"
	if got := strings.Join(strTypes(evs), " "); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	innerID := evs[4].RunID
	for i, ev := range evs {
		if ev.EventIndex != i || ev.SessionID != "s" {
			t.Errorf("event %d: index %d session %q", i, ev.EventIndex, ev.SessionID)
		}
		nested := i >= 4 && i <= 10
		switch {
		case nested && (ev.RunID != innerID || ev.ParentRunID != id || ev.AgentID != "researcher"):
			t.Errorf("inner event %d: run %s parent %q agent %q", i, ev.RunID, ev.ParentRunID, ev.AgentID)
		case !nested && (ev.RunID != id || ev.ParentRunID != "" || ev.AgentID != "lead"):
			t.Errorf("outer event %d: run %s parent %q agent %q", i, ev.RunID, ev.ParentRunID, ev.AgentID)
		}
	}
	if innerID == id {
		t.Fatal("the inner run has the outer run's id")
	}
	if res := evs[11].Tool; res == nil || res.Result != "dragons fly" || res.IsError {
		t.Errorf("tool result = %+v, want the inner run's content", res)
	}
	checkOneTerminalEach(t, evs, id)
}

func strTypes(evs []*run.Event) []string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = string(ev.Event)
	}
	return s
}

// TestAgentAsToolCancelledMidCall cancels the outer run while the inner one waits
// for its model: both stop at once, each with one RunCancelled, and nothing after
// the cancel reaches the stream (goleak, in TestMain, checks no goroutine is left).
func TestAgentAsToolCancelledMidCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel func(outer *agent.Agent, id string, cancelCtx context.CancelFunc)
		reason string
	}{
		{"CancelRun", func(a *agent.Agent, id string, _ context.CancelFunc) { a.CancelRun(context.Background(), id) }, run.ReasonRequested},
		{"context", func(_ *agent.Agent, _ string, cancel context.CancelFunc) { cancel() }, context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner := &agent.Agent{Name: "Researcher", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}}
			outer := caller("researcher", "dragons?", agent.AsTool(inner, "Finds facts"))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			id := run.NewID()
			var evs []*run.Event
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ev, err := range outer.Stream(ctx, "go", run.WithID(id)) {
					if err != nil {
						t.Errorf("stream: %v", err)
						return
					}
					evs = append(evs, ev)
					if ev.Event == run.EventRunStarted && ev.RunID != id {
						go tt.cancel(outer, id, cancel)
					}
				}
			}()
			within(t, done, "stream")

			last := evs[len(evs)-1]
			if last.Event != run.EventRunCancelled || last.RunID != id || last.Reason != tt.reason {
				t.Fatalf("last = %s of %s (%q), want the outer RunCancelled: %v", last.Event, last.RunID, last.Reason, types(evs))
			}
			runs := byRun(evs)
			if len(runs) != 2 {
				t.Fatalf("runs: %d, want the outer and the inner", len(runs))
			}
			for rid, rs := range runs {
				if end := rs[len(rs)-1]; end.Event != run.EventRunCancelled {
					t.Errorf("run %s ended with %s, want RunCancelled", rid, end.Event)
				}
			}
			for _, ev := range evs {
				if ev.Event == run.EventToolCallCompleted || ev.Event == run.EventToolCallError || ev.Event == run.EventRunError {
					t.Errorf("after the cancel: %s", ev.Event)
				}
			}
			checkOneTerminalEach(t, evs, id)
		})
	}
}

// An inner run that fails, times out or is cancelled on its own is a tool error
// the model reads; the outer run goes on and completes.
func TestAgentAsToolInnerFailureIsAToolError(t *testing.T) {
	t.Parallel()
	stalled := func() *agent.Agent {
		return &agent.Agent{Name: "Researcher", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}}
	}
	tests := []struct {
		name     string
		tool     func() tool.Tool
		act      func(outer *agent.Agent, innerID string) // at the inner RunStarted
		innerEnd run.EventType
		toolErr  string
	}{
		{"inner fails", func() tool.Tool {
			return agent.AsTool(&agent.Agent{Name: "Researcher", Model: failingModel{}}, "")
		}, nil, run.EventRunError, "provider down"},
		{"inner times out", func() tool.Tool {
			return tool.WithPolicy(agent.AsTool(stalled(), ""), tool.Policy{Timeout: 20 * time.Millisecond})
		}, nil, run.EventRunError, `tool "researcher": timed out after 20ms`},
		{"inner cancelled by its id", func() tool.Tool { return agent.AsTool(stalled(), "") },
			func(outer *agent.Agent, innerID string) { outer.CancelRun(context.Background(), innerID) },
			run.EventRunCancelled, "cancelled by request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outer := caller("researcher", "dragons?", tt.tool())
			id := run.NewID()
			var evs []*run.Event
			for ev, err := range outer.Stream(t.Context(), "go", run.WithID(id)) {
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev)
				if tt.act != nil && ev.Event == run.EventRunStarted && ev.RunID != id {
					go tt.act(outer, ev.RunID)
				}
			}
			last := evs[len(evs)-1]
			if last.Event != run.EventRunCompleted || last.RunID != id || last.Content != "done" {
				t.Fatalf("last = %s %q, want the outer run completed: %v", last.Event, last.Content, types(evs))
			}
			var toolErr *run.Event
			var innerEnd run.EventType
			for _, ev := range evs {
				if ev.Event == run.EventToolCallError {
					toolErr = ev
				}
				if ev.RunID != id && ev.Event.Terminal() {
					innerEnd = ev.Event
				}
			}
			if toolErr == nil || !strings.Contains(toolErr.Error, tt.toolErr) {
				t.Errorf("tool error = %+v, want one mentioning %q", toolErr, tt.toolErr)
			}
			if innerEnd != tt.innerEnd {
				t.Errorf("inner run ended with %s, want %s", innerEnd, tt.innerEnd)
			}
			checkOneTerminalEach(t, evs, id)
		})
	}
}

type failingModel struct{}

func (failingModel) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) { yield(model.Chunk{}, errors.New("provider down")) }
}

func TestAgentAsToolOutsideARun(t *testing.T) {
	t.Parallel()
	tl := agent.AsTool(&agent.Agent{Name: "Echo", Model: scripted.New("hi there")}, "Says hi")
	if d := tl.Definition(); d.Name != "echo" || d.Description != "Says hi" || !json.Valid(d.Parameters) {
		t.Errorf("definition = %+v", d)
	}
	got, err := tl.Call(t.Context(), json.RawMessage(`{"input":"hello"}`))
	if err != nil || got != "hi there" {
		t.Errorf("Call = %q, %v", got, err)
	}
	if _, err := tl.Call(t.Context(), json.RawMessage(`{"question":"hello"}`)); !errors.Is(err, tool.ErrInvalidArguments) {
		t.Errorf("Call with bad arguments: %v, want ErrInvalidArguments", err)
	}
}

func TestAgentAsToolInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		inner *agent.Agent
		want  string
	}{
		{"nil agent", nil, "nil"},
		{"no model", &agent.Agent{Name: "x"}, "no model"},
		{"name not a tool name", &agent.Agent{Name: "x", ID: "a b", Model: scripted.New("")}, "name must match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outer := &agent.Agent{Name: "o", Model: scripted.New("x"), Tools: []tool.Tool{agent.AsTool(tt.inner, "")}}
			if _, err := outer.Run(t.Context(), "go"); !errors.Is(err, run.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
	// An agent may be given itself as a tool: validating it must not loop.
	self := &agent.Agent{Name: "self", Model: scripted.New("x")}
	self.Tools = []tool.Tool{agent.AsTool(self, "")}
	if err := self.Validate(); err != nil {
		t.Errorf("Validate of an agent that is its own tool: %v", err)
	}
}
