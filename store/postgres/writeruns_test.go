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

// TestWriteRunsInOneBatch: valid creates, checkpoints and ends, a run written
// twice among them, are written by the batch itself, not by the one-write-per-run
// fallback, which would hide a statement the batch gets wrong behind correct
// outcomes at many times the cost; the ends are notified.
func TestWriteRunsInOneBatch(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	got := listenAll(t, s)
	warm(t, s, got)
	newRun := func(id string) *store.Run {
		return &store.Run{ID: id, Kind: run.KindWorkflow, Status: run.StatusRunning, Input: "go", Replica: "me",
			LeaseUntil: time.Now().Add(time.Hour), Output: run.Output{RunID: id, Status: run.StatusRunning}, CreatedAt: time.Now()}
	}
	for _, id := range []string{"running", "ending", "twice"} {
		if err := s.CreateRun(ctx, newRun(id)); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := newRun("running")
	checkpoint.Output.Content = "step one"
	end := newRun("ending")
	end.Status, end.Output.Status, end.Output.Content = run.StatusCompleted, run.StatusCompleted, "done"
	first, second := newRun("twice"), newRun("twice")
	first.Output.Content = "first"
	second.Status, second.Output.Status, second.Output.Content = run.StatusCancelled, run.StatusCancelled, "second"
	create := []*store.Run{newRun("fresh"), newRun("fresh")}
	update := []*store.Run{checkpoint, first, end, second}
	cerrs, uerrs := make([]error, len(create)), make([]error, len(update))
	if !s.writeBatchOfRuns(ctx, create, update, cerrs, uerrs) {
		t.Fatal("the batch of creates, checkpoints and ends failed")
	}
	if cerrs[0] != nil || !errors.Is(cerrs[1], store.ErrExists) || uerrs[0] != nil || uerrs[1] != nil || uerrs[2] != nil || uerrs[3] != nil {
		t.Errorf("outcomes %v, %v; want nil and ErrExists, then nil", cerrs, uerrs)
	}
	for id, want := range map[string]struct {
		st      run.Status
		content string
	}{"fresh": {run.StatusRunning, ""}, "running": {run.StatusRunning, "step one"},
		"ending": {run.StatusCompleted, "done"}, "twice": {run.StatusCancelled, "second"}} {
		if r, err := s.GetRun(ctx, id); err != nil || r.Status != want.st || r.Output.Content != want.content {
			t.Errorf("run %s = %+v, %v; want %s %q", id, r, err, want.st, want.content)
		}
	}
	for _, id := range []string{"ending", "twice"} {
		until(t, got, "ended", id)
	}
}
