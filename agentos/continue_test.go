package agentos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/internal/testagents"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/workflow"
)

// mailer is testagents.Mailer: an agent whose call send_mail waits for a person.
var mailer = testagents.Mailer

// agnoTools is the tools form field as Agno's AgentOSClient.continue_agent_run
// sends it: json.dumps([tool.to_dict() for tool in tools]), every field of its
// ToolExecution dataclass, None as null.
func agnoTools(callID string, confirmed bool, note string) string {
	n := "null"
	if note != "" {
		n = fmt.Sprintf("%q", note)
	}
	return fmt.Sprintf(`[{"tool_call_id": %q, "tool_name": "send_mail", "tool_args": {"to": "ada"}, "tool_call_error": null, `+
		`"result": null, "metrics": null, "child_run_id": null, "stop_after_tool_call": false, "created_at": 1764650000, `+
		`"requires_confirmation": true, "confirmed": %t, "confirmation_note": %s, "requires_user_input": null, `+
		`"user_input_schema": null, "user_feedback_schema": null, "answered": null, "external_execution_required": null, `+
		`"external_execution_silent": null, "approval_type": null, "approval_id": null}]`, callID, confirmed, n)
}

// TestContinueOverHTTP: an agent run paused on a call that requires confirmation
// on one server is continued, after that server is gone, by another on the same
// database through Agno's route and form (what its client sends): confirmed, the
// tool's result is in the output; rejected, the note is; streamed, the events go
// on from RunContinued. A run not paused is a 409, decisions that do not match a
// 422, malformed tools a 400, an unknown run a 404; a paused run cancelled ends
// CANCELLED.
func TestContinueOverHTTP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.db")
	open := func() *env {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var sent atomic.Int32
		return newEnv(t, Config{Store: st, Agents: []*agent.Agent{mailer(&sent)}})
	}
	a, b := open(), open()

	pause := func(e *env) (string, map[string]any) {
		t.Helper()
		code, out := e.do("POST", "/agents/mailer/runs", formType, form("message", "mail ada", "stream", "false"))
		if code != http.StatusOK || out["status"] != "PAUSED" {
			t.Fatalf("run: %d %v, want PAUSED", code, out)
		}
		tools, _ := out["tools"].([]any)
		reqs, _ := out["requirements"].([]any)
		if len(tools) != 1 || len(reqs) != 1 || out["paused"] != nil {
			t.Fatalf("paused run answered tools %v requirements %v paused %v", out["tools"], out["requirements"], out["paused"])
		}
		tl := tools[0].(map[string]any)
		if tl["requires_confirmation"] != true || tl["tool_name"] != "send_mail" {
			t.Fatalf("paused tool %v", tl)
		}
		return out["run_id"].(string), tl
	}

	runID, tl := pause(a)
	callID := tl["tool_call_id"].(string)
	if code, out := b.do("GET", "/agents/mailer/runs/"+runID, "", ""); code != http.StatusOK || out["status"] != "PAUSED" {
		t.Fatalf("read on B: %d %v", code, out)
	}
	// A is gone; B continues the run.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cont := "/agents/mailer/runs/" + runID + "/continue"
	if code, out := b.do("POST", cont, formType, form("tools", agnoTools("call_other", true, ""), "stream", "false")); code != http.StatusUnprocessableEntity {
		t.Fatalf("continue with a decision for another call: %d %v, want 422", code, out)
	}
	if code, out := b.do("POST", cont, formType, form("tools", "[{", "stream", "false")); code != http.StatusBadRequest {
		t.Fatalf("continue with malformed tools: %d %v, want 400", code, out)
	}
	if code, out := b.do("POST", "/agents/mailer/runs/no-such-run/continue", formType, form("tools", "[]", "stream", "false")); code != http.StatusNotFound {
		t.Fatalf("continue of an unknown run: %d %v, want 404", code, out)
	}
	code, out := b.do("POST", cont, formType, form("tools", agnoTools(callID, true, ""), "stream", "false", "session_id", "s"))
	if code != http.StatusOK || out["status"] != "COMPLETED" || out["content"] != "Sending. done: sent to ada" {
		t.Fatalf("continue, confirmed: %d %v", code, out)
	}
	if code, out := b.do("POST", cont, formType, form("tools", agnoTools(callID, true, ""), "stream", "false")); code != http.StatusConflict {
		t.Fatalf("continue of a completed run: %d %v, want 409", code, out)
	}

	t.Run("rejected, streamed, JSON", func(t *testing.T) {
		runID, tl := pause(b)
		body, _ := json.Marshal(map[string]any{"tools": []any{map[string]any{"tool_call_id": tl["tool_call_id"], "confirmed": false, "confirmation_note": "not ada"}}})
		s := b.openStream("POST", "/agents/mailer/runs/"+runID+"/continue", "application/json", string(body))
		fs := s.rest()
		if len(fs) < 2 || fs[0].ev.Event != run.EventRunContinued || fs[len(fs)-1].ev.Event != run.EventRunCompleted ||
			fs[len(fs)-1].ev.Content != "Sending. done: not ada" {
			t.Fatalf("continued stream: %v", events(fs))
		}
		code, stored := b.do("GET", "/agents/mailer/runs/"+runID, "", "")
		if code != http.StatusOK || stored["status"] != "COMPLETED" || stored["tools"] != nil {
			t.Fatalf("stored after continue: %d %v", code, stored)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		runID, tl := pause(b)
		code, out := b.do("POST", "/agents/mailer/runs/"+runID+"/cancel", "", "")
		if code != http.StatusOK || out["status"] != "CANCELLED" {
			t.Fatalf("cancel of a paused run: %d %v", code, out)
		}
		if code, out := b.do("POST", "/agents/mailer/runs/"+runID+"/continue", formType,
			form("tools", agnoTools(tl["tool_call_id"].(string), true, ""), "stream", "false")); code != http.StatusConflict {
			t.Fatalf("continue of a cancelled run: %d %v, want 409", code, out)
		}
	})
}

// TestContinueWorkflowOverHTTP: a workflow paused before a step that requires
// confirmation is continued through Agno's route with the form field
// step_requirements as Agno's client sends it; malformed, it is a 400.
func TestContinueWorkflowOverHTTP(t *testing.T) {
	say := &agent.Agent{Name: "sayer", Model: scripted.New("said")}
	wf := &workflow.Workflow{Name: "Reviewed", Steps: []workflow.Step{
		workflow.AgentStep("draft", say, ""),
		workflow.AgentStep("publish", say, "").WithConfirmation("Publish?", workflow.OnRejectCancel),
	}}
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{wf}})
	code, out := e.do("POST", "/workflows/reviewed/runs", formType, form("message", "go", "stream", "false"))
	reqs, _ := out["step_requirements"].([]any)
	if code != http.StatusOK || out["status"] != "PAUSED" || len(reqs) != 1 {
		t.Fatalf("run: %d %v", code, out)
	}
	id := out["run_id"].(string)
	cont := "/workflows/reviewed/runs/" + id + "/continue"
	if code, out := e.do("POST", cont, formType, form("step_requirements", "{", "stream", "false")); code != http.StatusBadRequest {
		t.Fatalf("malformed step_requirements: %d %v", code, out)
	}
	// As StepRequirement.to_dict writes it.
	decided := `[{"step_id": "publish", "step_name": "publish", "step_index": 1, "step_type": "Step", "requires_confirmation": true, ` +
		`"confirmation_message": "Publish?", "confirmed": true, "on_reject": "cancel", "requires_user_input": false, ` +
		`"user_input_message": null, "user_input": null, "requires_route_selection": false, "available_choices": null, ` +
		`"allow_multiple_selections": false, "selected_choices": null, "requires_output_review": false, ` +
		`"output_review_message": null, "is_post_execution": false, "rejection_feedback": null, "retry_count": 0, ` +
		`"max_retries": null, "timeout_at": null, "on_timeout": "cancel"}]`
	s := e.openStream("POST", cont, formType, form("step_requirements", decided))
	fs := s.rest()
	if len(fs) < 2 || fs[0].ev.Event != run.EventStepContinued || fs[len(fs)-1].ev.Event != run.EventWorkflowCompleted {
		t.Fatalf("continued stream: %v", events(fs))
	}
}

// TestApprovals: the paused runs are listed as Agno's approvals (one per run,
// filtered by agent or workflow, paged), read one by one, and resolved: approved,
// the run goes on and completes with the tool's result; rejected, with the note;
// resolved twice, a 409.
func TestApprovals(t *testing.T) {
	var sent atomic.Int32
	say := &agent.Agent{Name: "sayer", Model: scripted.New("said")}
	wf := &workflow.Workflow{Name: "Reviewed", Steps: []workflow.Step{
		workflow.AgentStep("publish", say, "").WithConfirmation("Publish?", workflow.OnRejectCancel),
	}}
	e := newEnv(t, Config{Agents: []*agent.Agent{mailer(&sent)}, Workflows: []*workflow.Workflow{wf}})
	var ids []string
	for _, path := range []string{"/agents/mailer/runs", "/agents/mailer/runs", "/workflows/reviewed/runs"} {
		code, out := e.do("POST", path, formType, form("message", "go", "stream", "false", "user_id", "ada"))
		if code != http.StatusOK || out["status"] != "PAUSED" {
			t.Fatalf("run: %d %v", code, out)
		}
		ids = append(ids, out["run_id"].(string))
	}
	list := func(query string) ([]any, map[string]any) {
		t.Helper()
		code, out := e.do("GET", "/approvals"+query, "", "")
		if code != http.StatusOK {
			t.Fatalf("GET /approvals%s: %d %v", query, code, out)
		}
		return out["data"].([]any), out["meta"].(map[string]any)
	}
	if data, meta := list(""); len(data) != 3 || meta["total_count"] != float64(3) {
		t.Fatalf("approvals: %d, meta %v", len(data), meta)
	}
	if data, _ := list("?agent_id=mailer"); len(data) != 2 || data[0].(map[string]any)["tool_name"] != "send_mail" ||
		data[0].(map[string]any)["pause_type"] != "confirmation" {
		t.Fatalf("the mailer's approvals: %v", data)
	}
	if data, meta := list("?limit=2&page=2"); len(data) != 1 || meta["total_pages"] != float64(2) {
		t.Fatalf("page 2 of 2: %d %v", len(data), meta)
	}
	// Past the last page nothing is counted; run_id and user_id select from every
	// page, not within one.
	if data, meta := list("?limit=2&page=5"); len(data) != 0 || meta["total_count"] != float64(0) || meta["total_pages"] != float64(0) {
		t.Fatalf("page 5 of 2: %d %v", len(data), meta)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"?limit=1&run_id=" + ids[0], 1}, {"?limit=1&run_id=" + ids[0] + "&agent_id=mailer&user_id=ada", 1},
		{"?run_id=" + ids[0] + "&workflow_id=reviewed", 0}, {"?run_id=" + ids[0] + "&user_id=bob", 0},
		{"?run_id=" + ids[0] + "&page=2", 0}, {"?run_id=nope", 0},
	} {
		data, meta := list(c.query)
		if len(data) != c.want || len(data) == 1 && data[0].(map[string]any)["run_id"] != ids[0] ||
			meta["total_count"] != float64(c.want) && !strings.Contains(c.query, "page=2") {
			t.Fatalf("approvals%s: %v %v, want %d", c.query, data, meta, c.want)
		}
	}
	if code, out := e.do("POST", "/agents/mailer/runs", formType, form("message", "go", "stream", "false", "user_id", "bob")); code != http.StatusOK || out["status"] != "PAUSED" {
		t.Fatalf("bob's run: %d %v", code, out)
	}
	if data, _ := list("?limit=1&user_id=ada"); len(data) != 1 || data[0].(map[string]any)["user_id"] != "ada" {
		t.Fatalf("ada's first approval behind bob's: %v", data)
	}
	if data, meta := list("?user_id=bob"); len(data) != 1 || meta["total_count"] != float64(1) {
		t.Fatalf("bob's approvals: %v %v", data, meta)
	}
	if data, _ := list("?status=approved"); len(data) != 0 {
		t.Fatalf("approved approvals: %v", data)
	}
	if code, _ := e.do("GET", "/approvals?limit=0", "", ""); code != http.StatusUnprocessableEntity {
		t.Fatalf("limit 0: %d", code)
	}
	if code, out := e.do("GET", "/approvals/"+ids[0], "", ""); code != http.StatusOK || out["status"] != "pending" || out["user_id"] != "ada" {
		t.Fatalf("GET an approval: %d %v", code, out)
	}
	resolve := func(id, body string) (int, map[string]any) {
		return e.do("POST", "/approvals/"+id+"/resolve", "application/json", body)
	}
	if code, out := resolve(ids[0], `{"status": "approved", "resolved_by": "ops"}`); code != http.StatusOK || out["status"] != "approved" {
		t.Fatalf("approve: %d %v", code, out)
	}
	if code, out := resolve(ids[1], `{"status": "rejected", "resolution_data": {"note": "not today"}}`); code != http.StatusOK {
		t.Fatalf("reject: %d %v", code, out)
	}
	if code, out := resolve(ids[2], `{"status": "maybe"}`); code != http.StatusUnprocessableEntity {
		t.Fatalf("resolve as maybe: %d %v", code, out)
	}
	if code, out := resolve(ids[2], `{"status": "rejected"}`); code != http.StatusOK {
		t.Fatalf("reject the workflow's: %d %v", code, out)
	}
	for i, want := range []string{"Sending. done: sent to ada", "Sending. done: not today", ""} {
		eventually.Succeeds(t, 10*time.Second, func() error {
			_, out := e.do("GET", "/runs/"+ids[i], "", "")
			if st := out["status"]; st != "COMPLETED" && st != "CANCELLED" || out["content"] != want && want != "" {
				return fmt.Errorf("run %d: %v %q", i, out["status"], out["content"])
			}
			return nil
		})
	}
	if code, _ := resolve(ids[0], `{"status": "approved"}`); code != http.StatusConflict {
		t.Fatalf("resolved twice: %d, want 409", code)
	}
	if code, _ := e.do("GET", "/approvals/"+ids[0], "", ""); code != http.StatusNotFound {
		t.Fatalf("GET a resolved approval: %d, want 404", code)
	}
}

// FuzzContinue: whatever the content type, query and body of a continue request,
// reading it and its decisions never panics nor answers 5xx: a client's mistake
// is a 4xx with a JSON detail, and what is accepted decodes into decisions.
func FuzzContinue(f *testing.F) {
	for _, seed := range []struct{ ct, query, body string }{
		{formType, "", form("tools", agnoTools("call_1", true, ""), "stream", "false")},
		{formType, "", form("tools", "[{", "stream", "false")},
		{formType, "", form("step_requirements", `[{"step_id":"a","confirmed":true}]`)},
		{formType, "stream=true", form("tools", "[]")},
		{formType, "", form("tools", `"[]"`, "background", "maybe")},
		{"application/json", "", `{"tools":[{"tool_call_id":"c","confirmed":false,"confirmation_note":"no"}],"stream":false}`},
		{"application/json", "", `{"tools":"[{\"tool_call_id\":\"c\"}]"}`},
		{"application/json", "", `{"step_requirements":[{"step_id":"s","user_input":{"topic":1}}]}`},
		{"application/json", "", `{"tools":{"a":1}}`},
		{"application/json", "", `{"session_id":"\u0000"}`},
		{"text/plain", "", "tools"},
	} {
		f.Add(seed.ct, seed.query, []byte(seed.body))
	}
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 16}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, ct, query string, body []byte) {
		for _, kind := range []string{"tools", "step_requirements"} {
			r := httptest.NewRequest("POST", "/agents/mailer/runs/r/continue", strings.NewReader(string(body)))
			r.URL.RawQuery = query
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			w := httptest.NewRecorder()
			req, err := s.readContinue(w, r)
			var tools []run.ToolExecution
			var steps []run.StepRequirement
			if err == nil && kind == "tools" {
				err = decodeList(kind, req.Tools, &tools)
			} else if err == nil {
				err = decodeList(kind, req.StepRequirements, &steps)
			}
			if err != nil {
				s.answerError(w, err)
				refusal(t, w, fmt.Sprintf("%q %q %q", ct, query, body))
				continue
			}
			if _, err := json.Marshal(tools); err != nil {
				t.Fatalf("accepted tools that do not encode: %v", err)
			}
			if _, err := json.Marshal(steps); err != nil {
				t.Fatalf("accepted step requirements that do not encode: %v", err)
			}
		}
	})
}
