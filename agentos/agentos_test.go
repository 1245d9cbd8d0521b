package agentos

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/client"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

func TestStreamCancelOverHTTP(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}})
	s := e.openStream("POST", "/workflows/story/runs", formType, form("message", "a dragon", "session_id", "s1"))
	fs := s.until(run.EventRunContent)
	runID := fs[0].ev.RunID
	if fs[0].ev.Event != run.EventWorkflowStarted || fs[0].ev.WorkflowID != "story" {
		t.Fatalf("first event %+v", fs[0].ev)
	}

	code, body := e.do("POST", "/workflows/story/runs/"+runID+"/cancel", "", "")
	if code != http.StatusOK || body["status"] != "CANCELLED" || body["run_id"] != runID {
		t.Fatalf("cancel: %d %v", code, body)
	}
	fs = append(fs, s.rest()...)
	checkRun(t, fs, 0, runID, run.EventWorkflowCancelled)

	for _, path := range []string{"/workflows/story/runs/" + runID, "/runs/" + runID, "/sessions/s1/runs/" + runID} {
		code, body = e.do("GET", path, "", "")
		if code != http.StatusOK || body["status"] != "CANCELLED" || body["content"] != "Once " ||
			body["workflow_id"] != "story" || body["reason"] != run.ReasonRequested {
			t.Fatalf("GET %s: %d %v", path, code, body)
		}
	}
	code, body = e.do("GET", "/workflows/story/runs?session_id=s1&status=cancelled", "", "")
	if list, _ := body["list"].([]any); code != http.StatusOK || len(list) != 1 {
		t.Fatalf("list: %d %v", code, body)
	}
	// Cancelling again reports the final status.
	if code, body = e.do("POST", "/runs/"+runID+"/cancel", "", ""); code != http.StatusOK || body["status"] != "CANCELLED" {
		t.Fatalf("second cancel: %d %v", code, body)
	}
}

func TestStreamCompletes(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	s := e.openStream("POST", "/workflows/quick/runs", "application/json", `{"message":"hi"}`)
	fs := s.rest()
	checkRun(t, fs, 0, fs[0].ev.RunID, run.EventWorkflowCompleted)
	// Nested agent events carry the agent's run id and the workflow's.
	for _, f := range fs {
		if f.ev.Event == run.EventRunContent && (f.ev.RunID == fs[0].ev.RunID || f.ev.WorkflowRunID != fs[0].ev.RunID) {
			t.Fatalf("nested event %s", f.data)
		}
	}
}

func TestNoStream(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	for _, c := range []struct{ ct, body string }{
		{formType, form("message", "hi", "stream", "false")},
		{"application/json", `{"message":"hi","stream":false,"user_id":"u1"}`},
	} {
		code, body := e.do("POST", "/workflows/quick/runs", c.ct, c.body)
		if code != http.StatusOK || body["status"] != "COMPLETED" || body["content"] != "hello world" ||
			body["workflow_id"] != "quick" || body["session_id"] == "" {
			t.Fatalf("%s: %d %v", c.ct, code, body)
		}
	}
}

func TestMultipartForm(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	body := "--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n" +
		"--XX\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\nfalse\r\n--XX--\r\n"
	code, out := e.do("POST", "/workflows/quick/runs", "multipart/form-data; boundary=XX", body)
	if code != http.StatusOK || out["content"] != "hello world" {
		t.Fatalf("%d %v", code, out)
	}
}

func TestBackgroundCancelRunningAndQueued(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Workers: 1, QueueSize: 1})
	start := func() (int, map[string]any) {
		return e.do("POST", "/workflows/story/runs", formType, form("message", "go", "background", "true"))
	}
	code, running := start()
	if code != http.StatusAccepted || running["status"] != "PENDING" || running["session_id"] == "" {
		t.Fatalf("background: %d %v", code, running)
	}
	// QueueSize bounds the runs waiting in the store's queue: once the first has
	// left it for the worker, one more fits.
	eventually.Succeeds(t, 10*time.Second, func() error { // polling an HTTP API
		if _, body := e.do("GET", "/runs/"+running["run_id"].(string), "", ""); body["status"] != "RUNNING" {
			return fmt.Errorf("first background run %v, not RUNNING", body["status"])
		}
		return nil
	})
	code, queued := start()
	if code != http.StatusAccepted {
		t.Fatalf("second background: %d %v", code, queued)
	}
	if code, ra, detail := e.post("/workflows/story/runs", form("message", "go", "background", "true")); code != http.StatusTooManyRequests || ra != "2" || detail == "" {
		t.Fatalf("full queue: %d Retry-After %q %q, want 429 with Retry-After 2", code, ra, detail)
	}
	if code, body := e.do("GET", "/runs/"+queued["run_id"].(string), "", ""); code != http.StatusOK || body["status"] != "PENDING" {
		t.Fatalf("queued run: %d %v", code, body)
	}

	// The queued run ends CANCELLED without waiting for a worker.
	code, body := e.do("POST", "/workflows/story/runs/"+queued["run_id"].(string)+"/cancel", "", "")
	if code != http.StatusOK || body["status"] != "CANCELLED" {
		t.Fatalf("cancel queued: %d %v", code, body)
	}
	// The running one: follow its stream to its first content, then cancel it.
	id := running["run_id"].(string)
	s := e.openStream("GET", "/workflows/story/runs/"+id+"/resume", "", "")
	s.until(run.EventRunContent)
	code, body = e.do("POST", "/workflows/story/runs/"+id+"/cancel", "", "")
	if code != http.StatusOK || body["status"] != "CANCELLED" {
		t.Fatalf("cancel running: %d %v", code, body)
	}
	s.rest()
	for _, id := range []string{id, queued["run_id"].(string)} {
		if code, body := e.do("GET", "/runs/"+id, "", ""); code != http.StatusOK || body["status"] != "CANCELLED" {
			t.Fatalf("GET %s: %d %v", id, code, body)
		}
		rec, err := e.store.GetRun(context.Background(), id)
		if err != nil || rec.Status != run.StatusCancelled {
			t.Fatalf("stored %s: %v %v", id, rec, err)
		}
	}
}

func TestCancelUnknown(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	code, body := e.do("POST", "/workflows/quick/runs/no-such-run/cancel", "", "")
	if code != http.StatusOK || body["status"] != "PENDING" || body["run_id"] != "no-such-run" {
		t.Fatalf("unknown run: %d %v", code, body)
	}
	code, body = e.do("POST", "/workflows/nope/runs/no-such-run/cancel", "", "")
	if code != http.StatusNotFound || body["detail"] == nil {
		t.Fatalf("unknown workflow: %d %v", code, body)
	}
}

func TestResumeAfterDrop(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{gatedWorkflow("Gated", gate)}, StreamGrace: time.Hour})
	s := e.openStream("POST", "/workflows/gated/runs", formType, form("message", "go"))
	seen := s.until(run.EventRunContent)
	runID := seen[0].ev.RunID
	s.close() // the connection drops

	s = e.openStream("POST", "/workflows/gated/runs/"+runID+"/resume", formType,
		form("last_event_index", strconv.Itoa(seen[len(seen)-1].id), "session_id", seen[0].ev.SessionID))
	more := s.until(run.EventRunContent)
	seen = append(seen, more...)
	s.close()

	s = e.openStream("GET", "/workflows/gated/runs/"+runID+"/resume", "", "", "Last-Event-ID", strconv.Itoa(seen[len(seen)-1].id))
	close(gate)
	seen = append(seen, s.rest()...)
	checkRun(t, seen, 0, runID, run.EventWorkflowCompleted)

	// Once the run has ended, its stream is replayed from the store.
	s = e.openStream("GET", "/workflows/gated/runs/"+runID+"/resume?last_event_index=2", "", "")
	replayed := s.rest()
	checkRun(t, replayed, 3, runID, run.EventWorkflowCompleted)
	if len(replayed) != len(seen)-3 {
		t.Fatalf("replayed %d events, want %d", len(replayed), len(seen)-3)
	}
}

func TestDisconnectCancelsAfterGrace(t *testing.T) {
	for _, grace := range []time.Duration{time.Millisecond, CancelAtOnce} {
		e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, StreamGrace: grace})
		s := e.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
		fs := s.until(run.EventRunContent)
		lr := e.srv.host.Lookup(fs[0].ev.RunID)
		s.close()
		out := lr.Exec().Wait()
		if out.Status != run.StatusCancelled || out.Reason != ReasonClientDisconnected {
			t.Fatalf("grace %v: %s %q", grace, out.Status, out.Reason)
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, SecurityKey: "s3cret"})
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/health", "", 200},
		{"/config", "", 401},
		{"/workflows", "Bearer wrong", 401},
		{"/workflows", "s3cret", 401},
		{"/workflows", "Bearer s3cret", 200},
		{"/config", "Bearer s3cret", 200},
		{"/nowhere", "", 401},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		code, body := e.do("GET", c.path, "", "", hdr...)
		if code != c.want || (code != 200 && body["detail"] == nil) {
			t.Errorf("%s with %q: %d %v, want %d", c.path, c.auth, code, body, c.want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, MaxBodyBytes: 1024})
	code, out := e.do("POST", "/workflows/quick/runs", formType, form("message", "hi", "stream", "false"))
	if code != 200 {
		t.Fatal(code, out)
	}
	done := out["run_id"].(string)
	big := form("message", strings.Repeat("x", 2048))
	for _, c := range []struct {
		name, method, path, ct, body string
		hdr                          []string
		want                         int
	}{
		{"malformed JSON", "POST", "/workflows/quick/runs", "application/json", `{"message":`, nil, 400},
		{"malformed form", "POST", "/workflows/quick/runs", formType, "message=%zz", nil, 400},
		{"malformed multipart", "POST", "/workflows/quick/runs", "multipart/form-data; boundary=XX", "garbage", nil, 400},
		{"missing message (form)", "POST", "/workflows/quick/runs", formType, "stream=false", nil, 422},
		{"missing message (JSON)", "POST", "/workflows/quick/runs", "application/json", `{"stream":false}`, nil, 422},
		{"bad boolean", "POST", "/workflows/quick/runs", formType, "message=hi&stream=maybe", nil, 422},
		{"body over the limit", "POST", "/workflows/quick/runs", formType, big, nil, 413},
		{"JSON over the limit", "POST", "/workflows/quick/runs", "application/json", `{"message":"` + strings.Repeat("x", 2048) + `"}`, nil, 413},
		{"unsupported media type", "POST", "/workflows/quick/runs", "text/plain", "hi", nil, 415},
		{"unknown workflow", "POST", "/workflows/nope/runs", formType, "message=hi", nil, 404},
		{"unknown workflow info", "GET", "/workflows/nope", "", "", nil, 404},
		{"unknown run", "GET", "/workflows/quick/runs/nope", "", "", nil, 404},
		{"unknown run (kern)", "GET", "/runs/nope", "", "", nil, 404},
		{"unknown run resume", "GET", "/workflows/quick/runs/nope/resume", "", "", nil, 404},
		{"unknown agent", "GET", "/agents/nope", "", "", nil, 404},
		{"wrong method", "DELETE", "/workflows", "", "", nil, 405},
		{"wrong method on runs", "PUT", "/workflows/quick/runs", "", "", nil, 405},
		{"unknown route", "GET", "/nowhere", "", "", nil, 404},
		{"invalid Last-Event-ID", "GET", "/workflows/quick/runs/" + done + "/resume", "", "", []string{"Last-Event-ID", "abc"}, 400},
		{"invalid last_event_index", "POST", "/workflows/quick/runs/" + done + "/resume", formType, "last_event_index=-5", nil, 400},
		{"bad status filter", "GET", "/workflows/quick/runs?status=FINE", "", "", nil, 422},
		{"bad limit", "GET", "/workflows/quick/runs?limit=x", "", "", nil, 422},
		{"bad wait", "POST", "/runs/" + done + "/cancel?wait=soon", "", "", nil, 422},
		{"unknown session", "GET", "/sessions/nope", "", "", nil, 404},
		{"delete unknown session", "DELETE", "/sessions/nope", "", "", nil, 404},
	} {
		code, body := e.do(c.method, c.path, c.ct, c.body, c.hdr...)
		if d, _ := body["detail"].(string); code != c.want || d == "" {
			t.Errorf("%s: %d %v, want %d with a detail", c.name, code, body, c.want)
		}
	}
}

// TestConfigDefaultOSID: a server given no OSID names itself "kern" in GET /config.
func TestConfigDefaultOSID(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	if code, body := e.do("GET", "/config", "", ""); code != 200 || body["os_id"] != "kern" {
		t.Fatalf("GET /config: %d os_id=%v, want \"kern\"", code, body["os_id"])
	}
}

func TestRoutesRead(t *testing.T) {
	a := &agent.Agent{Name: "Helper", Model: scripted.New("sure")}
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Agents: []*agent.Agent{a}, OSID: "test-os"})
	code, body := e.do("GET", "/health", "", "")
	if code != 200 || body["status"] != "ok" {
		t.Fatal(code, body)
	}
	code, body = e.do("GET", "/config", "", "")
	if code != 200 || body["os_id"] != "test-os" {
		t.Fatal(code, body)
	}
	for _, k := range []string{"databases", "agents", "teams", "workflows", "interfaces"} {
		if _, ok := body[k].([]any); !ok {
			t.Errorf("config %s: %v", k, body[k])
		}
	}
	code, body = e.do("GET", "/workflows/story", "", "")
	steps, _ := body["steps"].([]any)
	if code != 200 || body["id"] != "story" || len(steps) != 1 || steps[0].(map[string]any)["kind"] != "agent" {
		t.Fatal(code, body)
	}
	code, body = e.do("GET", "/agents", "", "")
	if list, _ := body["list"].([]any); code != 200 || len(list) != 1 {
		t.Fatal(code, body)
	}
	// An agent run, streamed, read back through its session, and the session deleted.
	s := e.openStream("POST", "/agents/helper/runs", formType, form("message", "help", "session_id", "s9"))
	fs := s.rest()
	checkRun(t, fs, 0, fs[0].ev.RunID, run.EventRunCompleted)
	code, body = e.do("GET", "/sessions/s9/runs/"+fs[0].ev.RunID, "", "")
	if code != 200 || body["agent_id"] != "helper" || body["content"] != "sure" {
		t.Fatal(code, body)
	}
	code, body = e.do("GET", "/agents/helper/runs/"+fs[0].ev.RunID, "", "")
	if code != 200 || body["status"] != "COMPLETED" {
		t.Fatal(code, body)
	}
	if code, body = e.do("GET", "/workflows/story/runs/"+fs[0].ev.RunID, "", ""); code != 404 {
		t.Fatal("an agent's run under a workflow:", code, body)
	}
	code, body = e.do("GET", "/sessions/s9/runs", "", "")
	if list, _ := body["list"].([]any); code != 200 || len(list) != 1 {
		t.Fatal(code, body)
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"invalid workflow":    {Workflows: []*workflow.Workflow{{Name: "Empty"}}},
		"duplicate ids":       {Workflows: []*workflow.Workflow{quickWorkflow("Quick"), quickWorkflow("Quick")}},
		"agent without model": {Agents: []*agent.Agent{{Name: "Nobody"}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	st := openStore(t)
	defer st.Close()
	srv, err := New(Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Store: st, ShutdownGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()

	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	c, err := client.New(base, hc)
	if err != nil {
		t.Fatal(err)
	}
	s := clientStream(t, func(ctx context.Context) iter.Seq2[*run.Event, error] {
		return c.Workflow("story").Stream(ctx, client.RunRequest{Message: "go"})
	})
	fs := s.until(run.EventRunContent)
	runID := fs[0].ev.RunID

	stop()
	fs = append(fs, s.rest()...)
	checkRun(t, fs, 0, runID, run.EventWorkflowCancelled)
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	rec, err := st.GetRun(context.Background(), runID)
	if err != nil || rec.Status != run.StatusCancelled || rec.Output.Reason != ReasonShutdown || rec.Output.Content != "Once " {
		t.Fatalf("stored run: %+v %v", rec, err)
	}
	// The server is closed: no new run starts.
	if _, err := hc.Post(base+"/workflows/story/runs", formType, strings.NewReader("message=hi")); err == nil {
		t.Fatal("server still accepts connections")
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Heartbeat: time.Millisecond})
	s := e.openStream("POST", "/workflows/story/runs", formType, form("message", "go"))
	s.until(run.EventRunContent)
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": ping\n" {
			break
		}
	}
}
