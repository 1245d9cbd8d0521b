package agentos

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kern-dev/kern/internal/eventually"
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
	for _, query := range []string{"?workflow_id=a&agent_id=b", "?agent_id=a&team_id=b", "?limit=1001", "?status=DONE", "?offset=-1"} {
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
	// The console's prefix opens nothing else: an unclean path is redirected,
	// not served.
	for _, path := range []string{"/console/../config", "/console/%2e%2e/runs", "/console//runs"} {
		req, _ := http.NewRequest("GET", e.url(path), nil)
		resp, err := e.client.Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s without the key: 200", path)
		}
	}
	// Only GET and HEAD of the console are public.
	if code, _ := e.do("POST", "/", formType, ""); code != http.StatusUnauthorized {
		t.Errorf("POST /: %d, want 401", code)
	}
}

func TestReplicasAndQueue(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{slowWorkflow("Story")}, Workers: 1, Replica: "alpha"})
	var ids []string
	for range 3 {
		code, v := e.do("POST", "/workflows/story/runs", formType, form("message", "hi", "background", "true"))
		if code != http.StatusAccepted {
			t.Fatalf("background run: %d %v", code, v)
		}
		ids = append(ids, v["run_id"].(string))
	}
	// One run executes (its worker is the only one); two wait.
	eventually.Succeeds(t, 10*time.Second, func() error {
		_, q := e.do("GET", "/queue", "", "")
		_, r := e.do("GET", "/replicas", "", "")
		reps := r["replicas"].([]any)
		first := reps[0].(map[string]any)
		if q["depth"] != 2.0 || q["oldest_created_at"] == nil || first["replica"] != "alpha" || first["this"] != true || first["live_runs"] != 1.0 {
			return fmt.Errorf("queue %v, replicas %v", q, r)
		}
		return nil
	})
	for _, id := range ids {
		if code, v := e.do("POST", "/runs/"+id+"/cancel", "", ""); code != http.StatusOK || v["status"] != "CANCELLED" {
			t.Fatalf("cancel %s: %d %v", id, code, v)
		}
	}
	if code, q := e.do("GET", "/queue", "", ""); code != http.StatusOK || q["depth"] != 0.0 || q["oldest_created_at"] != nil {
		t.Errorf("queue after the cancels: %d %v", code, q)
	}
}

func TestListRunsByUser(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	for _, u := range []string{"ann", "bob", "ann"} {
		if code, out := e.do("POST", "/workflows/quick/runs", formType, form("message", "hi", "stream", "false", "user_id", u)); code != http.StatusOK {
			t.Fatalf("run: %d %v", code, out)
		}
	}
	_, v := e.do("GET", "/runs?user_id=ann", "", "")
	if runs := v["list"].([]any); len(runs) != 2 || runs[0].(map[string]any)["user_id"] != "ann" {
		t.Errorf("ann's runs: %v", runs)
	}
}
