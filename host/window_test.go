package host

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventlog"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/workflow"
)

// longGatedWorkflow streams words chunks of content, then waits for gate (or its
// cancel) in a step named "gate".
func longGatedWorkflow(name string, words int, gate <-chan struct{}) *workflow.Workflow {
	writer := &agent.Agent{Name: name + " writer", Model: scripted.New(strings.Repeat("word ", words))}
	return &workflow.Workflow{Name: name, Steps: []workflow.Step{
		workflow.AgentStep("write", writer, "write"),
		workflow.FuncStep("gate", func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			select {
			case <-gate:
				return workflow.StepOutput{Content: "opened"}, nil
			case <-ctx.Done():
				return workflow.StepOutput{}, context.Cause(ctx)
			}
		}),
	}}
}

// followed is what one FollowExec gave: the indexes, in order, and how many of
// them came from the store.
type followed struct {
	idx    []int
	stored int
	last   run.EventType // the type of the last event
}

// followExec follows x from index from until stop reports true of an event, or
// the run's end.
func followExec(t *testing.T, h *Host, x *run.Exec, from int, stop func(index int, typ run.EventType) bool) followed {
	t.Helper()
	var f followed
	err := h.FollowExec(t.Context(), x, from, func(ev *run.Event) bool {
		f.idx, f.last = append(f.idx, ev.EventIndex), ev.Event
		return !stop(ev.EventIndex, ev.Event)
	}, func(evs []store.Event) bool {
		for _, e := range evs {
			f.idx, f.last = append(f.idx, e.Index), e.Type
			f.stored++
			if stop(e.Index, e.Type) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("FollowExec from %d: %v", from, err)
	}
	return f
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestFollowExecAcrossTheWindow: a long run keeps only a window of its events in
// memory; clients that follow it from any index — the first, just before and
// just after the window's start, the last — get the older events from the store,
// then the window's, then the live ones: every event once, in order, on SQLite and
// PostgreSQL.
func TestFollowExecAcrossTheWindow(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store { return sqliteStore(t, filepath.Join(t.TempDir(), "kern.db")) },
		"postgres": func(t *testing.T) store.Store {
			return openPostgres(t, pgtest.URL(), pgtest.Schema(t))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			gate := make(chan struct{})
			h := startHost(t, st, Options{Workflows: []*workflow.Workflow{longGatedWorkflow("Long", 300, gate)}, NoRecovery: true})
			r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "long", Input: "go", SessionID: "s"})
			if err != nil {
				t.Fatal(err)
			}
			<-r.Started()
			x := r.Exec()
			// The run's first client reads up to the gate's start (the second
			// step's): every event before it is durable then, and none follows
			// until the gate opens.
			steps := 0
			first := followExec(t, h, x, 0, func(_ int, typ run.EventType) bool {
				if typ == run.EventStepStarted {
					steps++
				}
				return steps == 2
			})
			last := first.idx[len(first.idx)-1]
			if first.last != run.EventStepStarted || !slices.Equal(first.idx, span(0, last)) {
				t.Fatalf("the first client read %v, ending with %s; want 0..%d, ending with the gate's start", first.idx, first.last, last)
			}
			held := x.Log.Held()
			if held == 0 || held > last+1-eventlog.Window {
				t.Fatalf("the log holds events from %d of 0..%d: want a window of about %d", held, last, eventlog.Window)
			}
			for _, from := range []int{0, held - 1, held, held + 1, last} {
				f := followExec(t, h, x, from, func(i int, _ run.EventType) bool { return i == last })
				if !slices.Equal(f.idx, span(from, last)) {
					t.Errorf("a client from %d read %v, want %d..%d once each", from, f.idx, from, last)
				}
				if fromStore := from < held; fromStore != (f.stored > 0) {
					t.Errorf("a client from %d read %d events from the store, the log holding those from %d", from, f.stored, held)
				}
			}

			// A client that follows from the start as the run goes on to its end.
			done := make(chan followed, 1)
			go func() {
				done <- followExec(t, h, x, 0, func(int, run.EventType) bool { return false })
			}()
			close(gate)
			f := <-done
			end := f.idx[len(f.idx)-1]
			if f.last != run.EventWorkflowCompleted || !slices.Equal(f.idx, span(0, end)) {
				t.Fatalf("a client from 0 through the run's end read %v, ending with %s", f.idx, f.last)
			}
			for _, from := range []int{0, held, end} {
				f := followExec(t, h, x, from, func(int, run.EventType) bool { return false })
				if !slices.Equal(f.idx, span(from, end)) {
					t.Errorf("after the run's end, a client from %d read %v, want %d..%d", from, f.idx, from, end)
				}
			}
		})
	}
}

// TestUnreadRunKeepsAWindow: a run no caller reads from its start (waited for,
// as an HTTP request without a stream is, or queued in the background) keeps
// only a window of its events even before a client follows it; a client that
// follows it later gets every event, the older ones from the store.
func TestUnreadRunKeepsAWindow(t *testing.T) {
	t.Parallel()
	st := sqliteStore(t, filepath.Join(t.TempDir(), "kern.db"))
	gate := make(chan struct{})
	close(gate)
	h := startHost(t, st, Options{Workflows: []*workflow.Workflow{longGatedWorkflow("Long", 300, gate)}, NoRecovery: true})
	for _, unread := range []bool{false, true} {
		r, err := h.Start(Request{Kind: run.KindWorkflow, Component: "long", Input: "go", SessionID: "s", Unread: unread})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := h.Result(t.Context(), r); err != nil || out.Status != run.StatusCompleted {
			t.Fatalf("run ended %v, %v", out, err)
		}
		x := r.Exec()
		if held := x.Log.Held(); (held > 0) != unread {
			t.Errorf("unread %v: the ended run holds its events from %d of %d", unread, held, x.Log.Len())
		}
		f := followExec(t, h, x, 0, func(int, run.EventType) bool { return false })
		if end := x.Log.Len() - 1; f.last != run.EventWorkflowCompleted || !slices.Equal(f.idx, span(0, end)) {
			t.Errorf("unread %v: a client from 0 read %v, ending with %s; want 0..%d", unread, f.idx, f.last, end)
		}
	}
}
