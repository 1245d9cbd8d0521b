package host

import (
	"context"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// BenchmarkStartAdmission measures Start of a one-step run kept in memory, waited
// for to its end, without MaxRuns and with it: what admission control adds to
// the Start path (a comparison and a count under the lock Start takes anyway).
func BenchmarkStartAdmission(b *testing.B) {
	wf := &workflow.Workflow{Name: "Bench", Steps: []workflow.Step{
		workflow.FuncStep("say", func(context.Context, *workflow.Input) (workflow.StepOutput, error) {
			return workflow.StepOutput{Content: "ok"}, nil
		}),
	}}
	for _, tc := range []struct {
		name    string
		maxRuns int
	}{{"unbounded", 0}, {"max-runs", 1 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := New(nil, Options{Workflows: []*workflow.Workflow{wf}, MaxRuns: tc.maxRuns, KeepRuns: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			b.ReportAllocs()
			for b.Loop() {
				r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "bench", Input: "go"})
				if err != nil {
					b.Fatal(err)
				}
				<-r.Exec().Done()
			}
		})
	}
}
