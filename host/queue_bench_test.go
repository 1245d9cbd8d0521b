package host

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// inMemoryQueue is a SQLite store that is no store.Queue, so that a host on it
// queues background runs in memory, as it did on SQLite before its queue.
type inMemoryQueue struct {
	store.Store
	store.Canceller
}

// BenchmarkBackgroundStart measures the time from Enqueue (what POST with
// background=true calls) to the first step of the run starting, on SQLite: with
// the store's durable queue, and with the in-process queue it replaced.
func BenchmarkBackgroundStart(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(*sqlite.Store) store.Store
	}{
		{"store-queue", func(s *sqlite.Store) store.Store { return s }},
		{"memory-queue", func(s *sqlite.Store) store.Store { return inMemoryQueue{s, s} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "kern.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			started := make(chan time.Time, 1)
			wf := &workflow.Workflow{Name: "Bench", Steps: []workflow.Step{
				workflow.FuncStep("start", func(context.Context, *workflow.Input) (workflow.StepOutput, error) {
					started <- time.Now()
					return workflow.StepOutput{Content: "ok"}, nil
				}),
			}}
			h, err := New(tc.wrap(st), Options{Workflows: []*workflow.Workflow{wf}, Workers: 1, NoRecovery: true})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				out, err := h.Enqueue(b.Context(), Request{Kind: run.KindWorkflow, Component: "bench", Input: "go"})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-started).Sub(t0))
				if _, err := h.Wait(b.Context(), out.RunID); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
