package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// TestWriteEnds: the last events of runs and their ends and checkpoints
// are written together, in one batch when nothing stands in the way, and
// otherwise events first, then the updates of the runs whose events were
// written: a lost run's update is not written, and events some of which are
// stored are written once.
func TestWriteEnds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	got := listenAll(t, s)
	warm(t, s, got)
	owned := func(id, replica string) *store.Run {
		return &store.Run{ID: id, Kind: run.KindWorkflow, Status: run.StatusRunning, Replica: replica,
			LeaseUntil: time.Now().Add(time.Hour), Output: run.Output{RunID: id, Status: run.StatusRunning}}
	}
	for _, r := range []*store.Run{owned("ends", "me"), owned("checkpoints", "me"), owned("theirs", "other"), owned("retried", "me")} {
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	end := func(id string) *store.Run {
		r := owned(id, "me")
		r.Status, r.Output.Status, r.Output.Content = run.StatusCompleted, run.StatusCompleted, "done "+id
		return r
	}
	ck := owned("checkpoints", "me")
	ck.Output.Content = "step one"

	// In one batch.
	events := append(rangeEvents("ends", 0, 4, "me"), rangeEvents("checkpoints", 0, 2, "me")...)
	errs := make([]error, 2)
	written, err := s.writeEndsAll(ctx, "me", events, []*store.Run{end("ends"), ck}, errs)
	if !written || err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("writeEndsAll = %v, %v, %v; want written", written, err, errs)
	}
	for id, want := range map[string]string{"ends": "done ends", "checkpoints": "step one"} {
		if r, err := s.GetRun(ctx, id); err != nil || r.Output.Content != want {
			t.Errorf("run %s = %+v, %v", id, r, err)
		}
	}
	if n, _ := until(t, got, "events", "ends"); n.detail != "4" {
		t.Errorf("events of run ends heard up to %s, want 4", n.detail)
	}
	until(t, got, "ended", "ends")
	evs, err := s.Events(ctx, "checkpoints", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, evs, seq(0, 2), nil)

	// A run lost, and a run whose events are partly stored.
	if err := s.AppendEvents(ctx, rangeEvents("retried", 0, 3, "first")); err != nil {
		t.Fatal(err)
	}
	events = append(rangeEvents("theirs", 0, 1, "me"), rangeEvents("retried", 2, 6, "me")...)
	lost, errs, err := s.WriteEnds(ctx, "me", events, []*store.Run{end("theirs"), end("retried")})
	if err != nil || len(lost) != 1 || lost[0] != "theirs" || !errors.Is(errs[0], store.ErrTakenOver) || errs[1] != nil {
		t.Fatalf("WriteEnds = %v, %v, %v; want theirs lost, its end refused", lost, errs, err)
	}
	if r, err := s.GetRun(ctx, "theirs"); err != nil || r.Status != run.StatusRunning || r.Replica != "other" {
		t.Errorf("lost run = %+v, %v; want it left as the other replica has it", r, err)
	}
	if evs, err := s.Events(ctx, "theirs", 0, 0); err != nil || len(evs) != 0 {
		t.Errorf("lost run's events = %d, %v; want none", len(evs), err)
	}
	evs, err = s.Events(ctx, "retried", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, evs, seq(0, 6), map[int]string{2: "first", 3: "first", 4: "me"})
	if r, err := s.GetRun(ctx, "retried"); err != nil || r.Status != run.StatusCompleted {
		t.Errorf("retried run = %+v, %v; want COMPLETED", r, err)
	}

	// Events the store refuses: no update is written.
	bad := []store.Event{{RunID: "ends", Index: -1, Type: run.EventRunContent}}
	ck.Output.Content = "step two"
	_, errs, err = s.WriteEnds(ctx, "me", bad, []*store.Run{ck})
	if err == nil || !errors.Is(errs[0], err) {
		t.Errorf("WriteEnds of a refused event = %v, %v; want its error for the update too", errs, err)
	}
	if r, err := s.GetRun(ctx, "checkpoints"); err != nil || r.Output.Content != "step one" {
		t.Errorf("checkpoint after refused events = %+v, %v; want it not written", r, err)
	}
}
