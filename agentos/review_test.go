package agentos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
	rec := &store.Run{ID: id, SessionID: "s-" + id, Kind: store.KindWorkflow, ComponentID: workflowID,
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
		if terminalOf(store.KindWorkflow, e.Type) {
			out = append(out, fmt.Sprintf("%d:%s", e.Index, e.Type))
		}
	}
	return out
}

// TestReviewTakeoverOfRunWhoseStreamEnded: a replica died after it stored a run's
// terminal event (here WorkflowCancelled, during step two) but before it stored
// the record's terminal status (the recorder writes them in two statements). The
// replica taking it over must not run it again: the stream has ended.
func TestReviewTakeoverOfRunWhoseStreamEnded(t *testing.T) {
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

// TestReviewTakeoverWhileShuttingDown: a replica that is shutting down (waiting for
// its runs within the shutdown grace) still claims runs left behind; its takeover
// refuses them (errClosing) and the recorder then ends a resumable run ERROR
// "interrupted", instead of leaving it to its lease for another replica.
func TestReviewTakeoverWhileShuttingDown(t *testing.T) {
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

// TestReviewCancelLongRunID: a run id too long for the store's cancel intents is a
// client's mistake, answered 503 "store unavailable" (a retryable server error).
func TestReviewCancelLongRunID(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	a := replica(t, url, schema)
	id := strings.Repeat("x", postgres.MaxCancelRunID+1)
	code, body := a.do("POST", "/runs/"+id+"/cancel", "", "")
	if code >= 500 {
		t.Fatalf("cancel of a run id of %d bytes: %d %v; want a 4xx (404 or 422)", len(id), code, body)
	}
	code, body = a.do("POST", "/workflows/story/runs/"+id+"/cancel", "", "")
	if code >= 500 {
		t.Fatalf("cancel of a run id of %d bytes: %d %v; want a 4xx (404 or 422)", len(id), code, body)
	}
}

// handedRuns is a replica's store whose queue reports every run it hands to the
// replica.
type handedRuns struct {
	*postgres.Store
	handed chan string // run ids, in the order handed
}

// Work is the store's, with every run handed to fn reported on h.handed.
func (h *handedRuns) Work(ctx context.Context, workers int, serves []store.Component, fn func(context.Context, *store.Job) error) error {
	return h.Store.Work(ctx, workers, serves, func(ctx context.Context, j *store.Job) error {
		select {
		case h.handed <- j.ID:
		default: // more than the test expects: those it reads show it
		}
		return fn(ctx, j)
	})
}

// TestQueuedRunStartsOnlyOnAReplicaThatServesIt: replicas that serve different
// workflows (a rolling deploy adding one) share the queue. A queued run is
// handed only to a replica that serves its workflow, which runs it to
// COMPLETED; a replica that does not serve it is never handed it (before, it
// fetched the run and put it back, and could keep it PENDING for 20 s, or end it
// ERROR without a terminal event).
func TestQueuedRunStartsOnlyOnAReplicaThatServesIt(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	st := openSchema(t, url, schema)
	const n = 10
	qa := &handedRuns{Store: openSchema(t, url, schema), handed: make(chan string, n+1)}
	a := newEnv(t, Config{Store: qa, Replica: "replica-a", Workers: 4,
		Workflows: []*workflow.Workflow{quickWorkflow("Story")}})
	b := replicaWith(t, url, schema, Config{Workflows: []*workflow.Workflow{quickWorkflow("Other")}, Workers: 4})
	post := func(e *env, workflowID string) string {
		code, body := e.do("POST", "/workflows/"+workflowID+"/runs", formType, form("message", "go", "background", "true"))
		if code != http.StatusAccepted {
			t.Fatalf("background run of %s: %d %v", workflowID, code, body)
		}
		return fmt.Sprint(body["run_id"])
	}
	var ids []string
	for range n {
		ids = append(ids, post(b, "other"))
	}
	// Queued after them, a run of A's workflow shows that A's queue is worked.
	story := post(a, "story")

	var bad []string
	for _, id := range ids {
		body := waitStatus(t, b, id)
		if body["status"] != "COMPLETED" {
			bad = append(bad, fmt.Sprintf("%s %v %q, terminal events %v", id[len(id)-4:], body["status"], body["error"],
				terminals(t, st, id)))
		}
		if got := body["replica"]; got != b.srv.cfg.Replica {
			t.Errorf("run %s of workflow other executed by %v, want B (%s)", id, got, b.srv.cfg.Replica)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("runs of workflow other (served by B) taken by A: %d of %d not COMPLETED:\n%s",
			len(bad), len(ids), strings.Join(bad, "\n"))
	}
	body := waitStatus(t, a, story)
	if body["status"] != "COMPLETED" || body["replica"] != a.srv.cfg.Replica {
		t.Fatalf("run of workflow story (served by A): %v, want COMPLETED by A (%s)", body, a.srv.cfg.Replica)
	}
	// A's queue handed it story, and nothing else: not the runs of other, though
	// they were queued before story, and A's workers were free.
	if got := <-qa.handed; got != story {
		t.Errorf("A was handed run %s, want only %s", got, story)
	}
	select {
	case got := <-qa.handed:
		t.Errorf("A was also handed run %s", got)
	default:
	}
}
