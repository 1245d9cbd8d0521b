package agent_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
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

// BenchmarkAgentCancelLatency measures the time from CancelRun to the terminal event's
// arrival at the stream's reader, for an agent run at the top level and for the same
// agent given as a tool to another (the cancel goes to the outer run and must reach
// the inner one), (a) while the model streams a chunk every 10 ms and (b) while it
// is stalled before its first token. It reports p50 and p99: an agent as a tool must
// stop within the latency of a top-level run.
func BenchmarkAgentCancelLatency(b *testing.B) {
	models := []struct {
		name  string
		model *scripted.Model
		at    run.EventType // cancel once the inner agent's event of this type is read
	}{
		{"streaming", &scripted.Model{Turns: []scripted.Turn{{Text: strings.Repeat("word ", 1000)}}, Delay: 10 * time.Millisecond}, run.EventRunContent},
		{"stalled", &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}, run.EventRunStarted},
	}
	for _, m := range models {
		inner := &agent.Agent{Name: "inner", Model: m.model}
		outer := &agent.Agent{Name: "outer", Tools: []tool.Tool{agent.AsTool(inner, "")}, Model: &scripted.Model{Turns: []scripted.Turn{
			{ToolCalls: []model.ToolCall{{Name: "inner", Arguments: json.RawMessage(`{"input":"go"}`)}}},
		}}}
		for _, c := range []struct {
			name string
			a    *agent.Agent
		}{{"top-level", inner}, {"as-tool", outer}} {
			b.Run(c.name+"/"+m.name, func(b *testing.B) {
				ctx := context.Background()
				var lat []time.Duration
				for b.Loop() {
					id := run.NewID()
					var cancelled time.Time
					for ev := range c.a.Stream(ctx, "go", run.WithID(id)) {
						if ev.Event == m.at && ev.AgentID == "inner" && cancelled.IsZero() {
							cancelled = time.Now()
							go c.a.CancelRun(ctx, id)
						}
						if ev.Event == run.EventRunCancelled && ev.RunID == id {
							lat = append(lat, time.Since(cancelled))
						}
					}
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
			})
		}
	}
}
