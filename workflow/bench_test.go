package workflow_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

func twoSteps(chunks int) *workflow.Workflow {
	text := strings.Repeat("word ", chunks)
	return &workflow.Workflow{Name: "bench", Steps: []workflow.Step{
		workflow.AgentStep("research", &agent.Agent{Name: "Research", Model: scripted.New(text)}, ""),
		workflow.AgentStep("writing", &agent.Agent{Name: "Writing", Model: scripted.New(text)}, ""),
	}}
}

// BenchmarkWorkflowStream is the core workload: a two-step workflow, 20 chunks per
// step, zero-delay scripted model, consumed as a stream with every event (target
// ≤ 30 µs and ≤ 200 allocations per run). The chunks=200 case gives the cost of each
// extra chunk: (ns(200) − ns(20)) / 360 (target ≤ 0.3 µs and ≤ 2 allocations).
func BenchmarkWorkflowStream(b *testing.B) {
	for _, chunks := range []int{20, 200} {
		b.Run(fmt.Sprintf("chunks=%d", chunks), func(b *testing.B) {
			w := twoSteps(chunks)
			ctx := context.Background()
			events := 0
			b.ReportAllocs()
			for b.Loop() {
				for ev, err := range w.Stream(ctx, "go") {
					if err != nil || ev == nil {
						b.Fatal(err)
					}
					events++
				}
			}
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}

// BenchmarkWorkflowRun is the same workload through Run, without a reader.
func BenchmarkWorkflowRun(b *testing.B) {
	w := twoSteps(20)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Run(ctx, "go"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCancelLatency measures the time from CancelRun to the terminal event's
// arrival at the stream's reader, (a) while the model streams a chunk every 10 ms and
// (b) while it is stalled before its first token. It reports p50 and p99 (target
// through CancelRun: p50 ≤ 50 µs, p99 ≤ 200 µs in both cases).
func BenchmarkCancelLatency(b *testing.B) {
	cases := []struct {
		name  string
		model *scripted.Model
		at    run.EventType // cancel once this event has been read
	}{
		{"streaming", &scripted.Model{Turns: []scripted.Turn{{Text: strings.Repeat("word ", 1000)}}, Delay: 10 * time.Millisecond}, run.EventRunContent},
		{"stalled", &scripted.Model{Turns: []scripted.Turn{{Text: "never"}}, Stall: time.Hour}, run.EventRunStarted},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			w := &workflow.Workflow{Name: "w", Steps: []workflow.Step{
				workflow.AgentStep("s", &agent.Agent{Name: "a", Model: c.model}, ""),
			}}
			ctx := context.Background()
			var lat []time.Duration
			for b.Loop() {
				id := run.NewID()
				var cancelled time.Time
				for ev := range w.Stream(ctx, "go", run.WithID(id)) {
					if ev.Event == c.at && cancelled.IsZero() {
						cancelled = time.Now()
						go w.CancelRun(ctx, id)
					}
					if ev.Event == run.EventWorkflowCancelled {
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

// BenchmarkWorkflowRunChunks is BenchmarkWorkflowStream without a reader: the
// difference is the cost of delivering events to one.
func BenchmarkWorkflowRunChunks(b *testing.B) {
	for _, chunks := range []int{20, 200} {
		b.Run(fmt.Sprintf("chunks=%d", chunks), func(b *testing.B) {
			w := twoSteps(chunks)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Run(ctx, "go"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
