package agentos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"iter"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/pgtest"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/workflow"
)

// replica starts a server on its own PostgreSQL store in schema, serving the
// story workflow, or the workflows given.
func replica(t *testing.T, url, schema string, workflows ...*workflow.Workflow) *env {
	t.Helper()
	return replicaWith(t, url, schema, Config{Workflows: workflows})
}

// replicaWith starts a server for cfg on its own PostgreSQL store in schema.
func replicaWith(t *testing.T, url, schema string, cfg Config) *env {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server's shutdown (cleanups run last first)
	if len(cfg.Workflows) == 0 {
		cfg.Workflows = []*workflow.Workflow{slowWorkflow("Story")}
	}
	cfg.Store = st
	if cfg.Replica == "" {
		b := make([]byte, 4)
		rand.Read(b)
		cfg.Replica = "replica-" + hex.EncodeToString(b) // one process, several replicas
	}
	e := newEnv(t, cfg)
	e.store = nil // closed above, after the server
	return e
}

// stored waits until e reads run id from the store: a run's record is written
// with its first events, a few milliseconds after they were streamed.
func stored(t *testing.T, e *env, runID string) {
	t.Helper()
	eventually.Succeeds(t, 10*time.Second, func() error { // polling an HTTP API
		if code, body := e.do("GET", "/runs/"+runID, "", ""); code != http.StatusOK {
			return fmt.Errorf("run %s not stored: %d %v", runID, code, body)
		}
		return nil
	})
}

// waitStatus polls a run on e until its status is terminal, and returns its answer.
func waitStatus(t *testing.T, e *env, runID string) map[string]any {
	t.Helper()
	var body map[string]any
	eventually.Succeeds(t, 20*time.Second, func() error { // polling an HTTP API: there is nothing to wait on
		var code int
		code, body = e.do("GET", "/runs/"+runID, "", "")
		if code != http.StatusOK || !run.Status(fmt.Sprint(body["status"])).Terminal() {
			return fmt.Errorf("run %s not ended: %d %v", runID, code, body)
		}
		return nil
	})
	return body
}

// TestCancelAcrossReplicas: a run streamed from replica A, cancelled through
// replica B on the same database, ends CANCELLED on A's stream.
func TestCancelAcrossReplicas(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	a, b := replica(t, url, schema), replica(t, url, schema)
	story := a.kernClient().Workflow("story")
	streamStory := func(ctx context.Context) iter.Seq2[*run.Event, error] {
		return story.Stream(ctx, client.RunRequest{Message: "go"})
	}

	s := clientStream(t, streamStory)
	seen := s.until(run.EventRunContent)
	runID := seen[0].ev.RunID
	stored(t, b, runID)

	// The cancel waits for the run's end on A: its answer is the final status.
	code, body := b.do("POST", "/runs/"+runID+"/cancel", "", "")
	if code != http.StatusOK || body["status"] != "CANCELLED" {
		t.Fatalf("cancel on B: %d %v; want 200 CANCELLED", code, body)
	}
	seen = append(seen, s.rest()...)
	checkRun(t, seen, 0, runID, run.EventWorkflowCancelled)
	if _, got := b.do("GET", "/runs/"+runID, "", ""); got["replica"] != a.srv.cfg.Replica {
		t.Errorf("run read on B: replica %v, want A's %q", got["replica"], a.srv.cfg.Replica)
	}

	// wait=false answers at once, with the status stored then.
	s2 := clientStream(t, streamStory)
	id2 := s2.until(run.EventRunContent)[0].ev.RunID
	stored(t, b, id2)
	code, body = b.do("POST", "/runs/"+id2+"/cancel?wait=false", "", "")
	if code != http.StatusOK || (body["status"] != "RUNNING" && body["status"] != "CANCELLED") {
		t.Fatalf("cancel on B, wait=false: %d %v; want 200 RUNNING (or CANCELLED)", code, body)
	}
	s2.rest()

	// A cancel for a run no replica knows is kept: PENDING.
	code, body = b.do("POST", "/runs/later/cancel", "", "")
	if code != http.StatusOK || body["status"] != "PENDING" {
		t.Fatalf("cancel of an unknown run on B: %d %v; want 200 PENDING", code, body)
	}
}

// TestFollowAcrossReplicas: a run executing on replica A is streamed from replica B,
// from its first event to its end: every event once, in order.
func TestFollowAcrossReplicas(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	gate := make(chan struct{})
	a := replica(t, url, schema, gatedWorkflow("Gated", gate))
	b := replica(t, url, schema, gatedWorkflow("Gated", gate))
	if _, cfg := b.do("GET", "/config", "", ""); cfg["replica_id"] == a.srv.cfg.Replica || cfg["replica_id"] == "" {
		t.Fatalf("replica ids: A %q, B %v: want two distinct names", a.srv.cfg.Replica, cfg["replica_id"])
	}

	sa := a.openStream("POST", "/workflows/gated/runs", formType, form("message", "go"))
	fa := sa.until(run.EventStepStarted)
	for fa[len(fa)-1].ev.StepName != "gate" {
		fa = append(fa, sa.until(run.EventStepStarted)...)
	}
	runID := fa[0].ev.RunID

	sb := b.openStream("POST", "/workflows/gated/runs/"+runID+"/resume", formType, form("last_event_index", "-1"))
	fb := sb.until(run.EventStepStarted)
	for fb[len(fb)-1].ev.StepName != "gate" {
		fb = append(fb, sb.until(run.EventStepStarted)...)
	}
	close(gate) // the run goes on, on A; B follows it through the store
	fa = append(fa, sa.rest()...)
	fb = append(fb, sb.rest()...)
	checkRun(t, fa, 0, runID, run.EventWorkflowCompleted)
	checkRun(t, fb, 0, runID, run.EventWorkflowCompleted)
	if len(fa) != len(fb) {
		t.Fatalf("A streamed %d events, B %d", len(fa), len(fb))
	}
	for i := range fa {
		if fa[i].data != fb[i].data {
			t.Fatalf("event %d differs:\nA %s\nB %s", i, fa[i].data, fb[i].data)
		}
	}

	// From the middle, after the end: the rest, then the stream ends.
	sc := b.openStream("POST", "/workflows/gated/runs/"+runID+"/resume", formType, form("last_event_index", "4"))
	checkRun(t, sc.rest(), 5, runID, run.EventWorkflowCompleted)
}

// TestQueueAcrossReplicas: background runs queued on one replica run on either;
// one cancelled while queued ends CANCELLED without running, one cancelled while
// running ends CANCELLED.
func TestQueueAcrossReplicas(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	gate := make(chan struct{})
	a := replicaWith(t, url, schema, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}, Workers: 1})
	b := replicaWith(t, url, schema, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}, Workers: 1})

	var ids []string
	for range 4 {
		code, body := a.do("POST", "/workflows/gated/runs", formType, form("message", "go", "background", "true"))
		if code != http.StatusAccepted || body["status"] != "PENDING" {
			t.Fatalf("background run: %d %v", code, body)
		}
		ids = append(ids, fmt.Sprint(body["run_id"]))
	}
	// Two workers in all: two runs start (held at the gate), two stay queued.
	running, queued := []string{}, []string{}
	eventually.Succeeds(t, 20*time.Second, func() error { // polling an HTTP API
		running, queued = running[:0], queued[:0]
		for _, id := range ids {
			_, body := b.do("GET", "/runs/"+id, "", "")
			switch body["status"] {
			case "RUNNING":
				running = append(running, id)
			case "PENDING":
				queued = append(queued, id)
			default:
				t.Fatalf("run %s: %v", id, body)
			}
		}
		if len(running) < 2 {
			return fmt.Errorf("runs not started: running %v queued %v", running, queued)
		}
		return nil
	})
	if len(queued) != 2 {
		t.Fatalf("with one worker per replica, want 2 queued runs, got %v (running %v)", queued, running)
	}
	// Cancel a queued run (answer at once) and a running one (wait for its end).
	if code, body := b.do("POST", "/runs/"+queued[0]+"/cancel?wait=false", "", ""); code != http.StatusOK {
		t.Fatalf("cancel queued: %d %v", code, body)
	}
	if code, body := b.do("POST", "/runs/"+running[0]+"/cancel", "", ""); code != http.StatusOK || body["status"] != "CANCELLED" {
		t.Fatalf("cancel running: %d %v; want CANCELLED", code, body)
	}
	close(gate)
	want := map[string]string{queued[0]: "CANCELLED", running[0]: "CANCELLED", queued[1]: "COMPLETED", running[1]: "COMPLETED"}
	for id, st := range want {
		if body := waitStatus(t, a, id); body["status"] != st {
			t.Errorf("run %s: %v, want %s", id, body["status"], st)
		}
	}
	// The run cancelled while queued never started a step.
	s := a.resumeWorkflow("gated", queued[0])
	for _, f := range s.rest() {
		if f.ev.Event == run.EventStepStarted {
			t.Fatalf("a run cancelled while queued started step %q", f.ev.StepName)
		}
	}
}

// durableWorkflow has three function steps that count their calls.
func durableWorkflow(name string, calls *[3]atomic.Int32, notResumable bool) *workflow.Workflow {
	step := func(i int, name string) workflow.Step {
		return workflow.FuncStep(name, func(ctx context.Context, in *workflow.Input) (workflow.StepOutput, error) {
			calls[i].Add(1)
			return workflow.StepOutput{Content: in.Previous + name + "."}, nil
		})
	}
	return &workflow.Workflow{Name: name, NotResumable: notResumable,
		Steps: []workflow.Step{step(0, "one"), step(1, "two"), step(2, "three")}}
}

// leftBehind stores what a replica that died after a workflow's first step leaves:
// the run RUNNING under a lapsed lease, step one checkpointed, its events stored.
func leftBehind(t *testing.T, url, schema, workflowID string) string {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, now := run.NewID(), time.Now()
	one := run.StepResult{StepID: "one", StepName: "one", Content: "one.", Status: run.StatusCompleted}
	rec := &store.Run{ID: id, SessionID: "s-" + id, Kind: run.KindWorkflow, ComponentID: workflowID,
		Status: run.StatusRunning, Input: "go", Replica: "dead",
		Output: run.Output{RunID: id, SessionID: "s-" + id, WorkflowID: workflowID, Status: run.StatusRunning,
			Input: "go", StepResults: []run.StepResult{one}},
		LeaseUntil: now.Add(-time.Second), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	origin := &run.Origin{WorkflowID: workflowID, SessionID: rec.SessionID}
	zero := 0
	step := &run.Origin{WorkflowID: workflowID, SessionID: rec.SessionID, StepName: "one", StepID: "one", StepIndex: &zero}
	var evs []store.Event
	for i, ev := range []run.Event{
		{Event: run.EventWorkflowStarted, Origin: origin},
		{Event: run.EventStepStarted, Origin: step},
		{Event: run.EventStepCompleted, Origin: step, Content: "one."},
	} {
		ev.RunID, ev.EventIndex, ev.CreatedAt = id, i, now.Unix()
		data, err := ev.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, store.Event{RunID: id, Index: i, Type: ev.Event, Data: data, CreatedAt: now})
	}
	if err := st.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTakeover: a replica takes over the run a dead one left behind after its first
// step, and resumes it after that step; a run of a workflow marked not resumable
// ends ERROR "interrupted".
func TestTakeover(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	var calls, fixedCalls [3]atomic.Int32
	id := leftBehind(t, url, schema, "durable")
	fixed := leftBehind(t, url, schema, "fixed")
	b := replicaWith(t, url, schema, Config{Lease: time.Second, Workflows: []*workflow.Workflow{
		durableWorkflow("Durable", &calls, false), durableWorkflow("Fixed", &fixedCalls, true)}})

	body := waitStatus(t, b, id)
	if body["status"] != "COMPLETED" || body["content"] != "one.two.three." || body["replica"] != b.srv.cfg.Replica {
		t.Fatalf("taken-over run: %v; want COMPLETED one.two.three. on %s", body, b.srv.cfg.Replica)
	}
	if steps, _ := body["step_results"].([]any); len(steps) != 3 {
		t.Fatalf("step results: %v; want 3", body["step_results"])
	}
	if got := [3]int32{calls[0].Load(), calls[1].Load(), calls[2].Load()}; got != [3]int32{0, 1, 1} {
		t.Fatalf("step calls %v; want [0 1 1]: the finished step must not run again", got)
	}
	s := b.resumeWorkflow("durable", id)
	fs := s.rest()
	checkRun(t, fs, 0, id, run.EventWorkflowCompleted)
	var started []string
	for _, f := range fs {
		if f.ev.Event == run.EventWorkflowStarted {
			started = append(started, "workflow")
		}
		if f.ev.Event == run.EventStepStarted {
			started = append(started, f.ev.StepName)
		}
	}
	if fmt.Sprint(started) != "[workflow one two three]" {
		t.Fatalf("started: %v; want [workflow one two three]", started)
	}

	body = waitStatus(t, b, fixed)
	if body["status"] != "ERROR" || body["error"] != store.ReasonInterrupted {
		t.Fatalf("not-resumable run: %v; want ERROR interrupted", body)
	}
	if n := fixedCalls[0].Load() + fixedCalls[1].Load() + fixedCalls[2].Load(); n != 0 {
		t.Fatalf("a not-resumable run ran %d steps", n)
	}
}

// TestTakeoverNeverStarted: a run whose process died before it stored any event (a
// queued run its worker took, then died) starts on the replica that takes it over,
// even for a workflow marked not resumable: none of its steps ran.
func TestTakeoverNeverStarted(t *testing.T) {
	url, schema := pgtest.URL(), pgtest.Schema(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	id, now := run.NewID(), time.Now()
	rec := &store.Run{ID: id, SessionID: "s-" + id, Kind: run.KindWorkflow, ComponentID: "fixed",
		Status: run.StatusPending, Input: "go", Replica: "dead",
		Output:     run.Output{RunID: id, SessionID: "s-" + id, WorkflowID: "fixed", Status: run.StatusPending, Input: "go"},
		LeaseUntil: now.Add(-time.Second), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var calls [3]atomic.Int32
	b := replicaWith(t, url, schema, Config{Lease: time.Second, Workflows: []*workflow.Workflow{
		durableWorkflow("Fixed", &calls, true)}})
	body := waitStatus(t, b, id)
	if body["status"] != "COMPLETED" || body["content"] != "one.two.three." {
		t.Fatalf("run that never started: %v; want COMPLETED one.two.three.", body)
	}
	s := b.resumeWorkflow("fixed", id)
	checkRun(t, s.rest(), 0, id, run.EventWorkflowCompleted)
}

// TestCancelOfTooLongRunIDIsAClientError: a run id too long for the store's cancel
// intents is a client's mistake, answered 4xx, not 503 "store unavailable" (a
// retryable server error).
func TestCancelOfTooLongRunIDIsAClientError(t *testing.T) {
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
