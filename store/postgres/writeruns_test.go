package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestWriteRuns: WriteRuns creates and updates runs as CreateRun and UpdateRun do,
// each with its own outcome, in one batch or alone: a write refused, or a value
// PostgreSQL refuses (which fails the whole batch), leaves the others written.
func TestWriteRuns(t *testing.T) {
	s := openTest(t)
	rec := func(id string, st run.Status) *store.Run {
		return &store.Run{ID: id, Kind: run.KindWorkflow, Status: st, Input: "go",
			Output: run.Output{RunID: id, Status: st}, CreatedAt: time.Now()}
	}
	for _, id := range []string{"taken", "running"} {
		if err := s.CreateRun(t.Context(), rec(id, run.StatusRunning)); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := rec("running", run.StatusRunning)
	checkpoint.Output.Content = "step one"
	cerrs, uerrs := s.WriteRuns(t.Context(),
		[]*store.Run{rec("new", run.StatusRunning), rec("taken", run.StatusRunning)},
		[]*store.Run{rec("taken", run.StatusCompleted), rec("missing", run.StatusCompleted),
			checkpoint, rec("gone", run.StatusRunning)})
	if len(cerrs) != 2 || cerrs[0] != nil || !errors.Is(cerrs[1], store.ErrExists) {
		t.Errorf("create outcomes = %v, want nil and ErrExists", cerrs)
	}
	if len(uerrs) != 4 || uerrs[0] != nil || !errors.Is(uerrs[1], store.ErrNotFound) || uerrs[2] != nil ||
		!errors.Is(uerrs[3], store.ErrNotFound) {
		t.Errorf("update outcomes = %v, want nil, ErrNotFound, nil, ErrNotFound", uerrs)
	}
	want := map[string]run.Status{"new": run.StatusRunning, "taken": run.StatusCompleted, "running": run.StatusRunning}
	for id, st := range want {
		if r, err := s.GetRun(t.Context(), id); err != nil || r.Status != st {
			t.Errorf("run %s = %+v, %v; want %s", id, r, err, st)
		}
	}
	if r, err := s.GetRun(t.Context(), "running"); err != nil || r.Output.Content != "step one" {
		t.Errorf("checkpointed run = %+v, %v", r, err)
	}

	big := rec("big", run.StatusRunning)
	big.Input = strings.Repeat("x", store.MaxValueSize+1)
	bad := rec("bad", run.StatusRunning)
	bad.Replica = "nul\x00byte" // PostgreSQL's text refuses it: the batch fails
	cerrs, _ = s.WriteRuns(t.Context(), []*store.Run{big, bad, rec("small", run.StatusRunning)}, nil)
	if !errors.Is(cerrs[0], store.ErrTooLarge) || cerrs[1] == nil || cerrs[2] != nil {
		t.Errorf("outcomes of an oversized run and a refused one beside another = %v", cerrs)
	}
	if _, err := s.GetRun(t.Context(), "small"); err != nil {
		t.Errorf("the run beside them: %v", err)
	}
}

// TestWriteRunsInOneBatch: valid creates and checkpoints are written by the batch
// itself, not by the one-write-per-run fallback, which would hide a statement the
// batch gets wrong behind correct outcomes at many times the cost.
func TestWriteRunsInOneBatch(t *testing.T) {
	s := openTest(t)
	running := &store.Run{ID: "running", Kind: run.KindWorkflow, Status: run.StatusRunning, Input: "go",
		Output: run.Output{RunID: "running", Status: run.StatusRunning}, CreatedAt: time.Now()}
	if err := s.CreateRun(t.Context(), running); err != nil {
		t.Fatal(err)
	}
	fresh := &store.Run{ID: "fresh", Kind: run.KindWorkflow, Status: run.StatusRunning, Input: "go",
		Output: run.Output{RunID: "fresh", Status: run.StatusRunning}, CreatedAt: time.Now()}
	checkpoint := *running
	checkpoint.Output.Content = "step one"
	update := []*store.Run{&checkpoint}
	cerrs, uerrs := make([]error, 1), make([]error, 1)
	if !s.writeBatchOfRuns(t.Context(), []*store.Run{fresh}, update, []int{0}, cerrs, uerrs) {
		t.Fatal("the batch of a create and a checkpoint failed")
	}
	if cerrs[0] != nil || uerrs[0] != nil {
		t.Errorf("outcomes %v, %v", cerrs, uerrs)
	}
}
