package agentos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/workflow"
)

// runIn runs a component to its end (stream=false: answered once the run's end is
// stored) in a session, and returns the run's id.
func runIn(t *testing.T, e *env, path, message, sessionID, userID string) string {
	t.Helper()
	code, out := e.do("POST", path, formType, form("message", message, "stream", "false", "session_id", sessionID, "user_id", userID))
	if code != http.StatusOK || out["status"] != "COMPLETED" {
		t.Fatalf("POST %s: %d %v", path, code, out)
	}
	return fmt.Sprint(out["run_id"])
}

// sessionIDsOf returns the session ids of a GET /sessions answer, and its meta.
func sessionIDsOf(t *testing.T, body map[string]any) ([]string, map[string]any) {
	t.Helper()
	data, ok := body["data"].([]any)
	meta, _ := body["meta"].(map[string]any)
	if !ok || meta == nil {
		t.Fatalf("not a page of sessions: %v", body)
	}
	ids := []string{}
	for _, d := range data {
		ids = append(ids, fmt.Sprint(d.(map[string]any)["session_id"]))
	}
	return ids, meta
}

// newestFirst reports whether sessions are sorted newest first by a time field.
func newestFirst(sessions []any, field string) bool {
	for i := 1; i < len(sessions); i++ {
		a, _ := sessions[i-1].(map[string]any)[field].(float64)
		b, _ := sessions[i].(map[string]any)[field].(float64)
		if a < b {
			return false
		}
	}
	return true
}

// TestSessionOfAWorkflowRun: a workflow run that saves no session state makes a
// session all the same, which can be read and deleted with its runs.
func TestSessionOfAWorkflowRun(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	runID := runIn(t, e, "/workflows/quick/runs", "Write about dragons", "s1", "ann")

	code, body := e.do("GET", "/sessions/s1", "", "")
	want := map[string]any{"session_id": "s1", "session_name": "Write about dragons", "session_type": "workflow",
		"user_id": "ann", "component_id": "quick", "workflow_id": "quick", "session_state": map[string]any{}}
	for k, v := range want {
		if !reflect.DeepEqual(body[k], v) {
			t.Errorf("GET /sessions/s1: %s = %#v, want %#v (%d %v)", k, body[k], v, code, body)
		}
	}
	if _, ok := body["created_at"].(float64); !ok || body["agent_id"] != nil {
		t.Errorf("GET /sessions/s1: created_at %v, agent_id %v", body["created_at"], body["agent_id"])
	}
	if code, _ := e.do("GET", "/sessions/s1?type=agent", "", ""); code != http.StatusNotFound {
		t.Errorf("GET a workflow session as an agent's: %d, want 404", code)
	}
	if code, _ := e.do("GET", "/sessions/s1?user_id=bob", "", ""); code != http.StatusNotFound {
		t.Errorf("GET another user's session: %d, want 404", code)
	}
	if code, _ := e.do("DELETE", "/sessions/s1?user_id=bob", "", ""); code != http.StatusNotFound {
		t.Errorf("DELETE another user's session: %d, want 404", code)
	}

	if code, body := e.do("DELETE", "/sessions/s1", "", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE /sessions/s1: %d %v", code, body)
	}
	if code, _ := e.do("GET", "/sessions/s1", "", ""); code != http.StatusNotFound {
		t.Errorf("GET a deleted session: %d, want 404", code)
	}
	if code, _ := e.do("GET", "/runs/"+runID, "", ""); code != http.StatusNotFound {
		t.Errorf("GET a deleted session's run: %d, want 404", code)
	}
	if code, body := e.do("GET", "/sessions/s1/runs", "", ""); code != http.StatusOK || len(body["list"].([]any)) != 0 {
		t.Errorf("runs of a deleted session: %d %v", code, body)
	}
	if code, _ := e.do("DELETE", "/sessions/s1", "", ""); code != http.StatusNotFound {
		t.Errorf("DELETE a deleted session: %d, want 404", code)
	}
}

// TestAgentSessionDetail: an agent's session names its agent as Agno's client
// expects (agent_id and agent_session_id).
func TestAgentSessionDetail(t *testing.T) {
	e := newEnv(t, Config{Agents: []*agent.Agent{{Name: "Helper", Model: scripted.New("sure")}}})
	runIn(t, e, "/agents/helper/runs", "help me", "s2", "")
	code, body := e.do("GET", "/sessions/s2", "", "")
	if code != http.StatusOK || body["agent_id"] != "helper" || body["agent_session_id"] != "s2" ||
		body["session_type"] != "agent" || body["workflow_id"] != nil || body["session_name"] != "help me" {
		t.Errorf("GET /sessions/s2: %d %v", code, body)
	}
}

// seedSessionsHTTP runs, in this order: s1 (quick, ann), s2 (quick, bob), s3
// (the helper agent, ann), then s1 again.
func seedSessionsHTTP(t *testing.T, e *env) {
	t.Helper()
	runIn(t, e, "/workflows/quick/runs", "Write about DRAGONS", "s1", "ann")
	runIn(t, e, "/workflows/quick/runs", "a poem", "s2", "bob")
	runIn(t, e, "/agents/helper/runs", "dragons again", "s3", "ann")
	runIn(t, e, "/workflows/quick/runs", "more", "s1", "ann")
}

// sessionsEnv starts a server of a workflow (quick) and an agent (helper), with a
// SQLite store, or without a store when memory is set.
func sessionsEnv(t *testing.T, memory bool) *env {
	t.Helper()
	cfg := Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")},
		Agents: []*agent.Agent{{Name: "Helper", Model: scripted.New("sure")}}}
	if memory {
		return memoryEnv(t, cfg)
	}
	return newEnv(t, cfg)
}

// memoryEnv starts a server without a store.
func memoryEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, ts: httptest.NewServer(srv.Handler())}
	e.client = e.ts.Client()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		e.client.CloseIdleConnections()
		e.ts.Close()
	})
	return e
}

// TestListSessions lists sessions as Agno's GET /sessions does, from the store and
// from a server's memory alike.
func TestListSessions(t *testing.T) {
	for _, where := range []string{"store", "memory"} {
		t.Run(where, func(t *testing.T) {
			e := sessionsEnv(t, where == "memory")
			seedSessionsHTTP(t, e)
			for _, c := range []struct {
				query string
				want  []string
				meta  string // page, limit, total_pages, total_count
			}{
				{"", []string{"s3", "s2", "s1"}, "1 20 1 3"},
				{"sort_by=created_at&sort_order=desc", []string{"s3", "s2", "s1"}, "1 20 1 3"},
				{"sort_order=asc", []string{"s1", "s2", "s3"}, "1 20 1 3"},
				{"type=agent", []string{"s3"}, "1 20 1 1"},
				{"type=workflow", []string{"s2", "s1"}, "1 20 1 2"},
				{"type=team", []string{}, "1 20 0 0"},
				{"component_id=quick", []string{"s2", "s1"}, "1 20 1 2"},
				{"user_id=ann", []string{"s3", "s1"}, "1 20 1 2"},
				{"session_name=dragon", []string{"s3", "s1"}, "1 20 1 2"},
				{"type=workflow&user_id=ann&component_id=quick", []string{"s1"}, "1 20 1 1"},
				{"limit=2", []string{"s3", "s2"}, "1 2 2 3"},
				{"limit=2&page=2", []string{"s1"}, "2 2 2 3"},
				{"limit=2&page=0", []string{"s3", "s2"}, "1 2 2 3"},
				{"limit=2&page=9", []string{}, "9 2 2 3"},
				{"db_id=kern-db&table=sessions", []string{"s3", "s2", "s1"}, "1 20 1 3"},
			} {
				code, body := e.do("GET", "/sessions?"+c.query, "", "")
				if code != http.StatusOK {
					t.Errorf("GET /sessions?%s: %d %v", c.query, code, body)
					continue
				}
				ids, meta := sessionIDsOf(t, body)
				got := fmt.Sprint(meta["page"], " ", meta["limit"], " ", meta["total_pages"], " ", meta["total_count"])
				if !reflect.DeepEqual(ids, c.want) || got != c.meta {
					t.Errorf("GET /sessions?%s = %v, meta %s; want %v, meta %s", c.query, ids, got, c.want, c.meta)
				}
			}
			// Sorted by updated_at (to the second: s1's last run may leave it).
			_, body := e.do("GET", "/sessions?sort_by=updated_at", "", "")
			if ids, _ := sessionIDsOf(t, body); len(ids) != 3 || !newestFirst(body["data"].([]any), "updated_at") {
				t.Errorf("GET /sessions?sort_by=updated_at = %v", body["data"])
			}
			// An entry has Agno's fields.
			_, body = e.do("GET", "/sessions?type=agent", "", "")
			s3 := body["data"].([]any)[0].(map[string]any)
			if s3["session_name"] != "dragons again" || s3["agent_id"] != "helper" || s3["user_id"] != "ann" ||
				s3["session_type"] != "agent" || !reflect.DeepEqual(s3["session_state"], map[string]any{}) {
				t.Errorf("listed session: %v", s3)
			}
			if _, ok := s3["updated_at"].(float64); !ok {
				t.Errorf("listed session's updated_at: %v", s3["updated_at"])
			}
		})
	}
}

func TestListSessionsRejects(t *testing.T) {
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{quickWorkflow("Quick")}})
	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "limit=1001", "page=-1", "page=2.5",
		"page=99999999999", "type=robot", "sort_by=name", "sort_order=up"} {
		code, body := e.do("GET", "/sessions?"+q, "", "")
		if d, _ := body["detail"].(string); code != http.StatusUnprocessableEntity || d == "" {
			t.Errorf("GET /sessions?%s: %d %v, want 422 with a detail", q, code, body)
		}
	}
	code, body := e.do("GET", "/sessions/x?type="+url.QueryEscape("no such"), "", "")
	if d, _ := body["detail"].(string); code != http.StatusUnprocessableEntity || d == "" {
		t.Errorf("GET /sessions/x with a bad type: %d %v, want 422 with a detail", code, body)
	}
}

// TestSessionsInMemory: a server without a store answers the sessions of the runs
// it holds, and refuses to delete them with a clear 409.
func TestSessionsInMemory(t *testing.T) {
	e := sessionsEnv(t, true)
	runIn(t, e, "/workflows/quick/runs", "Write about dragons", "s1", "ann")
	runIn(t, e, "/workflows/quick/runs", "again", "s1", "ann")
	code, body := e.do("GET", "/sessions/s1", "", "")
	if code != http.StatusOK || body["session_name"] != "Write about dragons" || body["workflow_id"] != "quick" ||
		body["user_id"] != "ann" || !reflect.DeepEqual(body["session_state"], map[string]any{}) {
		t.Errorf("GET /sessions/s1: %d %v", code, body)
	}
	code, body = e.do("DELETE", "/sessions/s1", "", "")
	if d, _ := body["detail"].(string); code != http.StatusConflict || d == "" {
		t.Errorf("DELETE a session held in memory: %d %v, want 409 with a detail", code, body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if code, body := e.do(m, "/sessions/nope", "", ""); code != http.StatusNotFound || body["detail"] == nil {
			t.Errorf("%s an unknown session: %d %v, want 404", m, code, body)
		}
	}
}
