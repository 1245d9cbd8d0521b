package agentos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/host"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// post sends a form and returns the answer's status, its Retry-After header and
// its JSON detail (the body is read to its end: a stream's too).
func (e *env) post(path, body string) (code int, retryAfter, detail string) {
	e.t.Helper()
	resp, err := e.client.Post(e.url(path), formType, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v struct {
		Detail string `json:"detail"`
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &v); err != nil {
			e.t.Fatalf("POST %s: %d, body not JSON: %q", path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), v.Detail
}

// wantBusy checks a 503 of admission control: Retry-After and a detail naming the
// limit.
func wantBusy(t *testing.T, what string, code int, retryAfter, detail, limit string) {
	t.Helper()
	if code != http.StatusServiceUnavailable || retryAfter != "2" || !strings.Contains(detail, limit) {
		t.Fatalf("%s: %d Retry-After %q detail %q, want 503, Retry-After 2 and a detail naming %q",
			what, code, retryAfter, detail, limit)
	}
}

// TestMaxStreams: beyond Config.MaxStreams a new stream and a resumption are
// answered 503 with Retry-After, no run started; reads, /health and a cancel are
// answered all the same; once a stream closes a new one is taken.
func TestMaxStreams(t *testing.T) {
	e := newEnv(t, Config{MaxStreams: 1, Workflows: []*workflow.Workflow{slowWorkflow("Story"), quickWorkflow("Quick")}})
	s := e.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
	read := s.until(run.EventRunContent)
	id := read[0].ev.RunID

	code, ra, detail := e.post("/workflows/quick/runs", form("message", "go"))
	wantBusy(t, "a second stream", code, ra, detail, "max streams")
	// The client package says when to retry.
	for _, err := range e.kernClient().Workflow("quick").Stream(t.Context(), client.RunRequest{Message: "go"}) {
		if ce, ok := errors.AsType[*client.Error](err); !ok || ce.StatusCode != http.StatusServiceUnavailable || ce.RetryAfter != RetryAfter {
			t.Fatalf("a second stream through the client: %v, want a 503 *client.Error with RetryAfter %v", err, RetryAfter)
		}
	}
	if n := len(e.srv.Host().Runs()); n != 1 {
		t.Fatalf("%d runs held after a refused stream, want 1", n)
	}
	code, ra, detail = e.post("/workflows/story/runs/"+id+"/resume", form("last_event_index", "0"))
	wantBusy(t, "a resumption", code, ra, detail, "max streams")
	// Not streams: answered.
	if code, _, _ := e.post("/workflows/quick/runs", form("message", "go", "stream", "false")); code != http.StatusOK {
		t.Fatalf("a run answered as JSON while streams are saturated: %d", code)
	}
	for _, path := range []string{"/health", "/runs/" + id} {
		if code, body := e.do("GET", path, "", ""); code != http.StatusOK {
			t.Fatalf("GET %s while saturated: %d %v", path, code, body)
		}
	}
	if code, body := e.do("POST", "/runs/"+id+"/cancel", "", ""); code != http.StatusOK || body["status"] != string(run.StatusCancelled) {
		t.Fatalf("cancel while saturated: %d %v", code, body)
	}
	checkRun(t, s.rest(), len(read), id, run.EventWorkflowCancelled)
	s.close()

	eventually.Succeeds(t, 10*time.Second, func() error {
		if code, _, detail := e.post("/workflows/quick/runs", form("message", "go")); code != http.StatusOK {
			return fmt.Errorf("a stream once the other closed: %d %s", code, detail)
		}
		return nil
	})
}

// TestMaxRunsBusy: a run beyond the host's MaxRuns (host.ErrBusy) is answered 503
// with Retry-After, streamed or not, and a cancel is answered; once a run ends a
// new one starts.
func TestMaxRunsBusy(t *testing.T) {
	e := newEnv(t, Config{MaxRuns: 1, Workflows: []*workflow.Workflow{slowWorkflow("Story"), quickWorkflow("Quick")}})
	r, err := e.srv.Host().Start(host.Request{Kind: run.KindWorkflow, Component: "story", Input: "go"})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{form("message", "go"), form("message", "go", "stream", "false")} {
		code, ra, detail := e.post("/workflows/quick/runs", body)
		wantBusy(t, "a run beyond max runs ("+body+")", code, ra, detail, "max runs")
	}
	if code, body := e.do("POST", "/runs/"+r.ID()+"/cancel", "", ""); code != http.StatusOK || body["status"] != string(run.StatusCancelled) {
		t.Fatalf("cancel while busy: %d %v", code, body)
	}
	eventually.Succeeds(t, 10*time.Second, func() error {
		if code, _, detail := e.post("/workflows/quick/runs", form("message", "go", "stream", "false")); code != http.StatusOK {
			return fmt.Errorf("a run once the other ended: %d %s", code, detail)
		}
		return nil
	})
}
