package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// TestMaxRuns: a Start beyond Options.MaxRuns is refused with ErrBusy before any
// work (the run is not held, its id stays free), background runs are not counted,
// and a place frees once a run ends.
func TestMaxRuns(t *testing.T) {
	gate := make(chan struct{})
	h := startHost(t, nil, Options{MaxRuns: 2, Workers: 1,
		Workflows: []*workflow.Workflow{slowWorkflow("Story"), gatedWorkflow("Gated", gate)}})
	ctx := context.Background()
	start := func(wf, id string) (*Run, error) {
		return h.Start(Request{Kind: run.KindWorkflow, Component: wf, Input: "go", RunID: id})
	}

	slow := untilContent(t, h, "story")
	gated, err := start("gated", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = start("story", "refused")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a third Start with MaxRuns 2: %v, want ErrBusy", err)
	}
	if h.Lookup("refused") != nil {
		t.Fatal("a refused run is held by the host")
	}
	// A background run is bounded by Workers, not MaxRuns.
	bg, err := h.Enqueue(ctx, Request{Kind: run.KindWorkflow, Component: "gated", Input: "go"})
	if err != nil {
		t.Fatalf("Enqueue while MaxRuns runs execute: %v", err)
	}

	// A run that ends gives its place back.
	close(gate)
	if out := gated.Exec().Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("gated run ended %s", out.Status)
	}
	var again *Run
	eventually.Succeeds(t, 10*time.Second, func() error {
		again, err = start("story", "")
		return err
	})
	if _, err := start("story", ""); !errors.Is(err, ErrBusy) {
		t.Fatalf("Start with the freed place taken again: %v, want ErrBusy", err)
	}
	for _, r := range []*Run{slow, again} {
		if st, _, err := h.Cancel(ctx, r.ID(), "", true); err != nil || st != run.StatusCancelled {
			t.Fatalf("cancel %s: %s %v", r.ID(), st, err)
		}
	}
	if r := h.Lookup(bg.RunID); r != nil {
		if _, err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxRunsZeroIsUnbounded: MaxRuns 0 refuses no Start.
func TestMaxRunsZeroIsUnbounded(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	h := startHost(t, nil, Options{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}})
	for range 50 {
		if _, err := h.Start(Request{Kind: run.KindWorkflow, Component: "gated", Input: "go"}); err != nil {
			t.Fatal(err)
		}
	}
}
