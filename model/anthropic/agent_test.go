package anthropic_test

import (
	"context"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/tool"
)

// TestAgentToolRoundTrip runs an agent with a real tool against the fake: the model
// asks for the tool, the agent calls it, and the result goes back in a tool_result.
func TestAgentToolRoundTrip(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fixture(t, "tool_use.sse"), fixture(t, "tool_use_answer.sse"))
	type args struct {
		Location string `json:"location"`
	}
	weather := tool.Func("get_weather", "Get weather", func(ctx context.Context, a args) (string, error) {
		return "sunny, 22°C in " + a.Location, nil
	})
	a := &agent.Agent{Name: "weather", Model: newModel(srv), Tools: []tool.Tool{weather}, Instructions: "be brief"}
	out, err := a.Run(t.Context(), "weather in Paris?")
	if err != nil {
		t.Fatal(err)
	}
	if want := "I'll check the current weather in Paris for you.It is sunny in Paris, 22°C."; out.Content != want {
		t.Errorf("content = %q, want %q", out.Content, want)
	}
	if out.ModelProvider != "anthropic" || out.Model != "claude-sonnet-4-5" {
		t.Errorf("model = %q %q", out.ModelProvider, out.Model)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(reqs))
	}
	p := reqs[1].Params
	if p.System.Text() != "be brief" || len(p.Messages) != 3 || len(p.Tools) != 1 {
		t.Fatalf("second request = %s", reqs[1].Body)
	}
	res := p.Messages[2].Content[0]
	if res.Type != "tool_result" || res.ToolUseID != "toolu_01NRLabsLyVHZPKxbKvkfSMn" || res.Content.Text() != "sunny, 22°C in Paris" {
		t.Errorf("tool result block = %+v", res)
	}
}
