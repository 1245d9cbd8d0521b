package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

const testKey = "test-key"

// startServer serves a quick workflow ("quick": two words) and a slow one ("slow":
// a word, then a pause until cancelled) with a security key, and cancels a run the
// moment its streaming client goes.
func startServer(t testing.TB) string {
	t.Helper()
	quick := &workflow.Workflow{Name: "quick", Steps: []workflow.Step{
		workflow.AgentStep("say", &agent.Agent{Name: "Sayer", Model: scripted.New("hello world")}, ""),
	}}
	slow := &workflow.Workflow{Name: "slow", Steps: []workflow.Step{
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: &scripted.Model{
			Turns: []scripted.Turn{{Text: "Once upon a time"}}, Delay: time.Hour,
		}}, ""),
	}}
	srv, err := agentos.New(agentos.Config{Workflows: []*workflow.Workflow{quick, slow},
		SecurityKey: testKey, StreamGrace: agentos.CancelAtOnce})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // cancel what still runs at once
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
	})
	return ts.URL
}

func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	hc := &http.Client{}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(url, hc, client.WithSecurityKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRun checks that evs are run id's events from index from on, in order, with
// one terminal event of type end, last.
func checkRun(t *testing.T, what string, evs []*run.Event, from int, id string, end run.EventType) {
	t.Helper()
	for i, ev := range evs {
		if ev.EventIndex != from+i {
			t.Fatalf("%s: event #%d has index %d, want %d: %q", what, i, ev.EventIndex, from+i, brief(evs))
		}
	}
	if len(evs) == 0 || evs[len(evs)-1].Event != end || evs[len(evs)-1].RunID != id {
		t.Fatalf("%s: want %s of run %s last: %q", what, end, id, brief(evs))
	}
}

// jsonOf returns the events' JSON.
func jsonOf(t *testing.T, evs []*run.Event) []string {
	t.Helper()
	var s []string
	for _, ev := range evs {
		b, err := ev.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, string(b))
	}
	return s
}

func TestServerOffers(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	c := newClient(t, url)
	ctx := t.Context()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Config(ctx)
	if err != nil || cfg.OSID == "" || len(cfg.Workflows) != 2 || cfg.Agents == nil || cfg.Interfaces == nil {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	ws, err := c.Workflows(ctx)
	if ids := []string{ws[0].ID, ws[1].ID}; err != nil || !slices.Contains(ids, "quick") || !slices.Contains(ids, "slow") {
		t.Fatalf("workflows %+v, %v", ws, err)
	}
	if as, err := c.Agents(ctx); err != nil || len(as) != 0 {
		t.Fatalf("agents %+v, %v", as, err)
	}

	noKey, err := client.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := noKey.Health(ctx); err != nil {
		t.Errorf("health without the key: %v", err)
	}
	_, err = noKey.Config(ctx)
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusUnauthorized || ce.Detail == "" {
		t.Errorf("config without the key: %v, want a 401 *client.Error with a detail", err)
	}
	for _, err := range noKey.Workflow("quick").Stream(ctx, client.RunRequest{Message: "hi"}) {
		if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusUnauthorized {
			t.Errorf("stream without the key: %v, want a 401 *client.Error", err)
		}
	}
	_, err = c.Workflow("nosuch").Runs(ctx, client.RunQuery{})
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusNotFound {
		t.Errorf("runs of an unknown workflow: %v, want a 404 *client.Error", err)
	}
	_, err = c.Workflow("quick").Runs(ctx, client.RunQuery{Status: "DONE"})
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(ce.Detail, "DONE") {
		t.Errorf("runs with a bad status: %v, want a 422 *client.Error naming it", err)
	}
}

// TestServerRunLifecycle streams a run to its end, reads it back, lists it and
// replays its events.
func TestServerRunLifecycle(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t))
	ctx := t.Context()
	wf := c.Workflow("quick")
	evs, err := collect(wf.Stream(ctx, client.RunRequest{Message: "hi", SessionID: "s1", UserID: "u1"}))
	if err != nil {
		t.Fatal(err)
	}
	id := evs[0].RunID
	checkRun(t, "the stream", evs, 0, id, run.EventWorkflowCompleted)
	if evs[0].Origin == nil || evs[0].WorkflowID != "quick" || evs[0].SessionID != "s1" {
		t.Errorf("first event %+v, want workflow quick's in session s1", evs[0])
	}
	var text strings.Builder
	for _, ev := range evs {
		if ev.Event == run.EventRunContent {
			text.WriteString(ev.Content)
		}
	}
	if !strings.Contains(text.String(), "hello") {
		t.Errorf("content %q", text.String())
	}

	for name, get := range map[string]func() (*client.Run, error){
		"GetRun":           func() (*client.Run, error) { return c.GetRun(ctx, id) },
		"Component.GetRun": func() (*client.Run, error) { return wf.GetRun(ctx, id) },
		"SessionRun":       func() (*client.Run, error) { return c.SessionRun(ctx, "s1", id) },
	} {
		r, err := get()
		if err != nil || r.RunID != id || r.Status != run.StatusCompleted || r.WorkflowID != "quick" || r.UserID != "u1" {
			t.Errorf("%s: %+v, %v", name, r, err)
		}
	}
	rs, err := wf.Runs(ctx, client.RunQuery{Status: run.StatusCompleted, Limit: 10})
	if err != nil || len(rs) != 1 || rs[0].RunID != id {
		t.Errorf("runs: %+v, %v", rs, err)
	}
	rs, err = c.SessionRuns(ctx, "s1", client.RunQuery{})
	if err != nil || len(rs) != 1 || rs[0].RunID != id {
		t.Errorf("session runs: %+v, %v", rs, err)
	}
	rs, err = c.Runs(ctx, client.RunQuery{SessionID: "s1", Status: run.StatusCompleted})
	if err != nil || len(rs) != 1 || rs[0].RunID != id || rs[0].WorkflowID != "quick" {
		t.Errorf("runs of the server: %+v, %v", rs, err)
	}
	if r, err := wf.Run(ctx, client.RunRequest{Message: "again"}); err != nil || r.Status != run.StatusCompleted || r.RunID == id {
		t.Errorf("run and wait: %+v, %v", r, err)
	}
	// Each loop over a stream starts a run, and ends at that run's end.
	twice := wf.Stream(ctx, client.RunRequest{Message: "twice"})
	first, err1 := collect(twice)
	second, err2 := collect(twice)
	if err1 != nil || err2 != nil || first[0].RunID == second[0].RunID {
		t.Errorf("a stream ranged twice: %v, %v; runs %q and %q", err1, err2, brief(first), brief(second))
	} else {
		checkRun(t, "the second loop", second, 0, second[0].RunID, run.EventWorkflowCompleted)
	}

	replay, err := collect(wf.Resume(ctx, id, -1))
	if err != nil || !slices.Equal(jsonOf(t, replay), jsonOf(t, evs)) {
		t.Errorf("resume from -1: %q, %v; want %q", jsonOf(t, replay), err, jsonOf(t, evs))
	}
	replay, err = collect(wf.Reconnect(ctx, id, 1))
	if err != nil || !slices.Equal(jsonOf(t, replay), jsonOf(t, evs[2:])) {
		t.Errorf("reconnect after 1: %q, %v; want %q", brief(replay), err, brief(evs[2:]))
	}
	_, err = c.GetRun(ctx, "no-such-run")
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusNotFound {
		t.Errorf("unknown run: %v, want a 404 *client.Error", err)
	}
}

// TestServerCancel cancels a streamed run while it runs: the stream ends with
// WorkflowCancelled, its partial content kept; a cancel of an unknown run keeps the
// intent (PENDING).
func TestServerCancel(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t))
	ctx := t.Context()
	var evs []*run.Event
	var ans *client.Cancelled
	for ev, err := range c.Workflow("slow").Stream(ctx, client.RunRequest{Message: "hi"}) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		if ev.Event == run.EventRunContent && ans == nil {
			if ans, err = c.CancelRun(ctx, evs[0].RunID, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	id := evs[0].RunID
	checkRun(t, "the cancelled stream", evs, 0, id, run.EventWorkflowCancelled)
	if ans == nil || ans.RunID != id || ans.Status != run.StatusCancelled {
		t.Errorf("cancel answer %+v, want CANCELLED", ans)
	}
	if r, err := c.GetRun(ctx, id); err != nil || r.Status != run.StatusCancelled || !strings.Contains(r.Content, "Once") {
		t.Errorf("cancelled run %+v, %v; want CANCELLED with its partial content", r, err)
	}
	if ans, err := c.Workflow("slow").Cancel(ctx, "not-started-yet", false); err != nil || ans.Status != run.StatusPending {
		t.Errorf("cancel of an unknown run: %+v, %v; want PENDING", ans, err)
	}
}

// TestServerBreakCancels: leaving a stream closes it, and the server (no grace)
// cancels the run.
func TestServerBreakCancels(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t))
	ctx := t.Context()
	var id string
	for ev, err := range c.Workflow("slow").Stream(ctx, client.RunRequest{Message: "hi"}) {
		if err != nil {
			t.Fatal(err)
		}
		id = ev.RunID
		break
	}
	eventually.Succeeds(t, hang, func() error {
		r, err := c.GetRun(ctx, id)
		if err != nil {
			return err
		}
		if r.Status != run.StatusCancelled {
			return fmt.Errorf("run %s: %s after the client left, want CANCELLED", id, r.Status)
		}
		return nil
	})
}

// TestServerBackground queues a run and follows it from its first event.
func TestServerBackground(t *testing.T) {
	t.Parallel()
	c := newClient(t, startServer(t))
	ctx := t.Context()
	wf := c.Workflow("quick")
	a, err := wf.Start(ctx, client.RunRequest{Message: "hi"})
	if err != nil || a.RunID == "" || a.SessionID == "" || a.Status != run.StatusPending {
		t.Fatalf("accepted %+v, %v", a, err)
	}
	evs, err := collect(wf.Resume(ctx, a.RunID, -1))
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, "the background run", evs, 0, a.RunID, run.EventWorkflowCompleted)
}
