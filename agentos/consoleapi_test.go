package agentos

import (
	"net/http"
	"testing"

	"github.com/kern-dev/kern/workflow"
)

func TestListAllRuns(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick"), quickWorkflow("Other")}})
	for _, wf := range []string{"quick", "other", "quick"} {
		if code, out := e.do("POST", "/workflows/"+wf+"/runs", formType, form("message", "hi", "stream", "false")); code != http.StatusOK {
			t.Fatalf("run %s: %d %v", wf, code, out)
		}
	}
	count := func(query string) int {
		t.Helper()
		code, v := e.do("GET", "/runs"+query, "", "")
		if code != http.StatusOK {
			t.Fatalf("GET /runs%s: %d %v", query, code, v)
		}
		return len(v["list"].([]any))
	}
	for query, want := range map[string]int{
		"": 3, "?workflow_id=quick": 2, "?workflow_id=other": 1, "?status=COMPLETED": 3, "?status=CANCELLED": 0,
		"?limit=2": 2, "?limit=2&offset=2": 1, "?agent_id=quick": 0,
	} {
		if got := count(query); got != want {
			t.Errorf("GET /runs%s: %d runs, want %d", query, got, want)
		}
	}
	for _, query := range []string{"?workflow_id=a&agent_id=b", "?limit=1001", "?status=DONE", "?offset=-1"} {
		if code, v := e.do("GET", "/runs"+query, "", ""); code != http.StatusUnprocessableEntity || v["detail"] == nil {
			t.Errorf("GET /runs%s: %d %v, want 422 with a detail", query, code, v)
		}
	}
}

func TestConsoleServedWithoutKey(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}, SecurityKey: "k"})
	for path, want := range map[string]int{"/": 200, "/console/app.js": 200, "/console/missing": 404, "/runs": 401} {
		resp, err := e.client.Get(e.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Only GET and HEAD of the console are public.
	if code, _ := e.do("POST", "/", formType, ""); code != http.StatusUnauthorized {
		t.Errorf("POST /: %d, want 401", code)
	}
}
