package agentos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/workflow"
)

// openSchema opens a store on the test schema, closed when the test ends.
func openSchema(t *testing.T, url, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeRun stores what a replica that died leaves: the run RUNNING under a lapsed
// lease, with the given checkpointed steps and events (type, step name).
func storeRun(t *testing.T, st store.Store, workflowID string, steps []run.StepResult, evs ...[2]string) string {
	t.Helper()
	ctx := context.Background()
	id, now := run.NewID(), time.Now()
	rec := &store.Run{ID: id, SessionID: "s-" + id, Kind: run.KindWorkflow, ComponentID: workflowID,
		Status: run.StatusRunning, Input: "go", Replica: "dead",
		Output: run.Output{RunID: id, SessionID: "s-" + id, WorkflowID: workflowID, Status: run.StatusRunning,
			Input: "go", StepResults: steps},
		LeaseUntil: now.Add(-time.Second), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for i, e := range evs {
		origin := &run.Origin{WorkflowID: workflowID, SessionID: rec.SessionID}
		if e[1] != "" {
			idx := 0
			origin.StepName, origin.StepID, origin.StepIndex = e[1], e[1], &idx
		}
		ev := run.Event{Event: run.EventType(e[0]), Origin: origin, RunID: id, EventIndex: i, CreatedAt: now.Unix()}
		if ev.Event == run.EventWorkflowCancelled {
			ev.Reason = run.ReasonRequested
		}
		data, err := ev.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, store.Event{RunID: id, Index: i, Type: ev.Event, Data: data, CreatedAt: now})
	}
	if err := st.AppendEvents(ctx, out); err != nil {
		t.Fatal(err)
	}
	return id
}

// terminals returns the stored top-level terminal events of run id.
func terminals(t *testing.T, st store.Store, id string) []string {
	t.Helper()
	evs, err := st.Events(context.Background(), id, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if terminalOf(run.KindWorkflow, e.Type) {
			out = append(out, fmt.Sprintf("%d:%s", e.Index, e.Type))
		}
	}
	return out
}

// TestTakeoverOfRunWhoseStreamEnded: a replica died after it stored a run's
// terminal event (here WorkflowCancelled, during step two) but before it stored
// the record's terminal status (the recorder writes them in two statements). The
// replica taking it over must not run it again: the stream has ended.
func TestTakeoverOfRunWhoseStreamEnded(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	st := openSchema(t, url, schema)
	one := run.StepResult{StepID: "one", StepName: "one", Content: "one.", Status: run.StatusCompleted}
	cancelled := storeRun(t, st, "durable", []run.StepResult{one},
		[2]string{string(run.EventWorkflowStarted), ""},
		[2]string{string(run.EventStepStarted), "one"},
		[2]string{string(run.EventStepCompleted), "one"},
		[2]string{string(run.EventStepStarted), "two"},
		[2]string{string(run.EventWorkflowCancelled), ""})

	var calls [3]atomic.Int32
	b := replicaWith(t, url, schema, Config{Lease: time.Second, Workflows: []*workflow.Workflow{
		durableWorkflow("Durable", &calls, false)}})
	body := waitStatus(t, b, cancelled)
	got := terminals(t, st, cancelled)
	if len(got) != 1 || body["status"] != "CANCELLED" ||
		calls[1].Load()+calls[2].Load() != 0 {
		t.Fatalf("run whose stored stream ended WorkflowCancelled: status %v, terminal events %v, steps two/three ran %d/%d times;"+
			" want its one terminal event, CANCELLED (or ERROR), no step run again",
			body["status"], got, calls[1].Load(), calls[2].Load())
	}
}

// TestTakeoverWhileShuttingDown: a replica that is shutting down (waiting for
// its runs within the shutdown grace) still claims runs left behind; its takeover
// refuses them (errClosing) and the recorder then ends a resumable run ERROR
// "interrupted", instead of leaving it to its lease for another replica.
func TestTakeoverWhileShuttingDown(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	st := openSchema(t, url, schema)
	gate := make(chan struct{})
	var calls [3]atomic.Int32
	sa := &claims{Store: openSchema(t, url, schema), claimed: make(chan []string, 64)}
	a := newEnv(t, Config{Store: sa, Replica: "replica-a", Lease: time.Second, Workflows: []*workflow.Workflow{
		gatedWorkflow("Gated", gate), durableWorkflow("Durable", &calls, false)}})

	// A run that keeps the shutdown waiting.
	s := a.openStream("POST", "/workflows/gated/runs", formType, form("message", "go"))
	s.until(run.EventRunContent)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- a.srv.Shutdown(ctx) }()
	eventually.Succeeds(t, 20*time.Second, func() error { // Shutdown signals nothing before it returns
		if !a.srv.host.Closing() {
			return errors.New("replica A not closing")
		}
		return nil
	})

	id := leftBehind(t, url, schema, "durable") // a replica died after step one
	sa.roundAfter(t, id)                        // a recovery round claimed it, and ended
	rec, err := st.GetRun(context.Background(), id)
	close(gate)
	s.rest()
	if err2 := <-shut; err2 != nil {
		t.Error(err2)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status == run.StatusError {
		t.Fatalf("a resumable run left behind, claimed by a replica shutting down: %s %q (replica %s);"+
			" want it left to its lease for a replica that can resume it", rec.Status, rec.Output.Error, rec.Replica)
	}
}

// claims is a replica's store that reports the runs each claim of runs left behind
// returned, so that a test waits for recovery rounds instead of sleeping through
// them.
type claims struct {
	*postgres.Store
	claimed chan []string // the ids of each Claim's runs, as it returns
}

// Claim is the store's, with the ids of the runs claimed reported on c.claimed.
func (c *claims) Claim(ctx context.Context, replica string, now, until time.Time, limit int) ([]*store.Run, error) {
	runs, err := c.Store.Claim(ctx, replica, now, until, limit)
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	select {
	case c.claimed <- ids:
	default: // more than the test reads
	}
	return runs, err
}

// roundAfter waits until a recovery round claimed run id and ended: a round
// claims once (one run is fewer than a batch), so the next claim starts the next
// round.
func (c *claims) roundAfter(t *testing.T, id string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for claimed := false; ; {
		select {
		case ids := <-c.claimed:
			if claimed {
				return
			}
			claimed = slices.Contains(ids, id)
		case <-timeout:
			t.Fatalf("no recovery round claimed run %s and ended (claimed: %v)", id, claimed)
		}
	}
}
