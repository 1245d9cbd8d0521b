package agentos

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/kern-dev/kern/workflow"
)

// A GET resume ignores a request body: a multipart body would otherwise be parsed
// without the size limit, and its fields honoured.
func TestGetResumeIgnoresBody(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, MaxBodyBytes: 1024})
	runID := e.openStream("POST", "/workflows/quick/runs", formType, form("message", "hi")).rest()[0].ev.RunID
	body := "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n" + strings.Repeat("x", 4<<20) +
		"\r\n--XX\r\nContent-Disposition: form-data; name=\"last_event_index\"\r\n\r\n2\r\n--XX--\r\n"
	req, _ := http.NewRequest("GET", e.url("/workflows/quick/runs/"+runID+"/resume"), strings.NewReader(body))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := (&sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}).rest()
	if len(got) == 0 || got[0].id != 0 {
		t.Fatalf("a GET resume honoured its body: first event %+v", got)
	}
}

func TestResumeIndexTooLarge(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	runID := e.openStream("POST", "/workflows/quick/runs", formType, form("message", "hi")).rest()[0].ev.RunID
	req, _ := http.NewRequest("GET", e.url("/workflows/quick/runs/"+runID+"/resume"), nil)
	req.Header.Set("Last-Event-ID", "9223372036854775807")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}
