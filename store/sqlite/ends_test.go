package sqlite

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
)

// endsRun stores a RUNNING run of replica and returns its end, CANCELLED.
func endsRun(t *testing.T, s *Store, replica string) *store.Run {
	t.Helper()
	id := run.NewID()
	r := &store.Run{ID: id, Kind: run.KindWorkflow, ComponentID: "wf", Status: run.StatusRunning, Input: "go",
		Output: run.Output{RunID: id, Status: run.StatusRunning}, Replica: replica,
		LeaseUntil: time.Now().Add(time.Hour), CreatedAt: time.Now()}
	if err := s.CreateRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	end := *r
	end.Status, end.Output.Status = run.StatusCancelled, run.StatusCancelled
	return &end
}

func endsEvent(id string, idx int, typ run.EventType) store.Event {
	return store.Event{RunID: id, Index: idx, Type: typ, Data: []byte(`{"event":"` + string(typ) + `"}`), CreatedAt: time.Now()}
}

// TestWriteEnds: runs' last events and their ends are stored in one transaction
// (one notices row tells both); a run another replica holds gets neither its
// events nor its end, and the others are written all the same.
func TestWriteEnds(t *testing.T) {
	s := openTemp(t)
	a, b, theirs := endsRun(t, s, "A"), endsRun(t, s, "A"), endsRun(t, s, "B")
	missing := &store.Run{ID: run.NewID(), Status: run.StatusCancelled, Replica: "A"}
	before := count(t, s, `SELECT count(*) FROM notices`)
	evs := []store.Event{
		endsEvent(a.ID, 0, run.EventWorkflowStarted), endsEvent(a.ID, 1, run.EventWorkflowCancelled),
		endsEvent(b.ID, 0, run.EventWorkflowCancelled),
		endsEvent(theirs.ID, 0, run.EventWorkflowCancelled),
	}
	lost, errs, err := s.WriteEnds(t.Context(), "A", evs, []*store.Run{a, b, theirs, missing})
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0] != theirs.ID {
		t.Errorf("lost = %v, want [%s]", lost, theirs.ID)
	}
	for i, want := range []error{nil, nil, store.ErrTakenOver, store.ErrNotFound} {
		if got := errs[i]; (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Errorf("record %d: %v, want %v", i, got, want)
		}
	}
	for _, c := range []struct {
		r      *store.Run
		events int
		status run.Status
	}{{a, 2, run.StatusCancelled}, {b, 1, run.StatusCancelled}, {theirs, 0, run.StatusRunning}} {
		got, err := s.GetRun(t.Context(), c.r.ID)
		if err != nil || got.Status != c.status {
			t.Errorf("run %s: %+v, %v; want %s", c.r.ID, got, err, c.status)
		}
		if stored, _ := s.Events(t.Context(), c.r.ID, 0, 0); len(stored) != c.events {
			t.Errorf("run %s: %d events stored, want %d", c.r.ID, len(stored), c.events)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM notices`); n != before+1 {
		t.Fatalf("%d notices rows written, want 1: one transaction", n-before)
	}
	var body string
	if err := s.r.QueryRowContext(t.Context(), `SELECT body FROM notices ORDER BY seq DESC LIMIT 1`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"e" + field(a.ID), "x" + field(a.ID), "e" + field(b.ID), "x" + field(b.ID)} {
		if !strings.Contains(body, want) {
			t.Errorf("notices %q lack %q", body, want)
		}
	}
	if strings.Contains(body, theirs.ID) {
		t.Errorf("notices %q tell of %s, which another replica holds", body, theirs.ID)
	}
}

// TestWriteEndsAllOrNothing: a write that fails stores nothing of it, neither the
// events nor the ends.
func TestWriteEndsAllOrNothing(t *testing.T) {
	s := openTemp(t)
	a := endsRun(t, s, "A")
	huge := endsEvent(a.ID, 1, run.EventWorkflowCancelled)
	huge.Data = make([]byte, store.MaxValueSize+1)
	_, _, err := s.WriteEnds(t.Context(), "A", []store.Event{endsEvent(a.ID, 0, run.EventWorkflowStarted), huge}, []*store.Run{a})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	got, err := s.GetRun(t.Context(), a.ID)
	if err != nil || got.Status != run.StatusRunning {
		t.Errorf("run: %+v, %v; want it RUNNING still", got, err)
	}
	if stored, _ := s.Events(t.Context(), a.ID, 0, 0); len(stored) != 0 {
		t.Errorf("%d events stored, want none", len(stored))
	}
}

// field is a run id as a notices body holds it.
func field(id string) string { return string(appendField(nil, id)) }
