package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// TestStoredStructuredStepResumes: the result of a structured step, stored by a
// store's Recorder, keeps its content type, and a run resumed from it feeds the
// value on.
func TestStoredStructuredStepResumes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kern.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := store.NewRecorder(st, store.RecorderOptions{})
	var used atomic.Int32
	w := &workflow.Workflow{Name: "stored", Recorder: rec, Steps: []workflow.Step{
		planner(),
		workflow.FuncStep("use", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			if used.Add(1) == 1 {
				return workflow.StepOutput{}, errors.New("first try fails")
			}
			p, err := workflow.Previous[plan](in)
			return workflow.StepOutput{Content: fmt.Sprintf("%+v", p)}, err
		}),
	}}
	id := run.NewID()
	if _, err := w.Run(ctx, "go", run.WithID(id)); err == nil {
		t.Fatal("first run did not fail")
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	steps := got.Output.StepResults
	if len(steps) != 2 || steps[0].ContentType != "plan" || steps[0].Content != `{"title":"Dragons","steps":3}` {
		t.Fatalf("stored step results %+v, want the planner's structured result first", steps)
	}
	w.Recorder = nil
	out, err := w.Run(ctx, "go", run.WithResume(&run.Resume{NextEvent: 10, Steps: steps[:1]}))
	if want := "{Title:Dragons Steps:3}"; err != nil || out.Content != want {
		t.Errorf("resumed Run = %q, %v; want %q", out.Content, err, want)
	}
}
