package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/tool"
)

var sinkAgent *agent.Agent

// BenchmarkAgentNew builds an agent with one tool (target ≤ 300 ns, ≤ 1 KiB).
func BenchmarkAgentNew(b *testing.B) {
	m := scripted.New("hi")
	weather := func(ctx context.Context, a weatherArgs) (string, error) { return "sunny", nil }
	b.ReportAllocs()
	for b.Loop() {
		sinkAgent = &agent.Agent{
			Name:         "Weather Agent",
			Model:        m,
			Tools:        []tool.Tool{tool.Func("get_weather", "Weather in a city", weather)},
			Instructions: "Answer with the weather.",
		}
	}
}

// BenchmarkAgentStream runs an agent whose model streams 20 chunks, consuming every event.
func BenchmarkAgentStream(b *testing.B) {
	a := &agent.Agent{Name: "a", Model: scripted.New(strings.Repeat("word ", 20))}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for ev, err := range a.Stream(ctx, "go") {
			if err != nil || ev == nil {
				b.Fatal(err)
			}
		}
	}
}
