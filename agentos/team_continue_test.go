package agentos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store/sqlite"
	"github.com/kern-dev/kern/team"
)

// mailTeam is a team whose leader gives the mailer a task (its call waits for a
// person's confirmation) and answers "team: " and what the mailer returned.
func mailTeam(sent *atomic.Int32) *team.Team {
	leader := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		if last := req.Messages[len(req.Messages)-1]; last.Role == model.RoleTool {
			return scripted.Turn{Text: "team: " + last.Content}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{{ID: "lead_1", Name: "delegate_task_to_member",
			Arguments: json.RawMessage(`{"member_id":"mailer","task":"mail ada"}`)}}}
	}}
	return &team.Team{Name: "Office", Model: leader, Members: []team.Member{team.Agent(mailer(sent), "")}}
}

// agnoRequirements is the requirements form field as Agno's
// AgentOSClient.continue_team_run sends it: json.dumps([r.to_dict() for r in
// requirements]), each a RunRequirement after confirm() or reject(note) (None
// values left out), its tool_execution every field of ToolExecution.
func agnoRequirements(req map[string]any, confirmed bool, note string) string {
	te := req["tool_execution"].(map[string]any)
	n := "null"
	if note != "" {
		n = fmt.Sprintf("%q", note)
	}
	tool := fmt.Sprintf(`{"tool_call_id": %q, "tool_name": %q, "tool_args": {"to": "ada"}, "tool_call_error": null, `+
		`"result": null, "metrics": null, "child_run_id": null, "stop_after_tool_call": false, "created_at": 1764650000, `+
		`"requires_confirmation": true, "confirmed": %t, "confirmation_note": %s, "requires_user_input": null, `+
		`"user_input_schema": null, "user_feedback_schema": null, "answered": null, "external_execution_required": null, `+
		`"external_execution_silent": null, "approval_type": null, "approval_id": null}`, te["tool_call_id"], te["tool_name"], confirmed, n)
	fields := fmt.Sprintf(`"id": %q, "created_at": "2026-12-02T05:00:00+00:00", "confirmation": %t, `, req["id"], confirmed)
	if note != "" {
		fields += fmt.Sprintf(`"confirmation_note": %q, `, note)
	}
	fields += fmt.Sprintf(`"member_agent_id": %q, "member_agent_name": %q, "member_run_id": %q, "tool_execution": %s`,
		req["member_agent_id"], req["member_agent_name"], req["member_run_id"], tool)
	return "[{" + fields + "}]"
}

// TestContinueTeamOverHTTP: a team run paused on its member's call (TeamRunPaused,
// PAUSED with the call and Agno's requirement naming the member) is continued by
// another server on the same database through POST /teams/{team_id}/runs/{run_id}/continue
// with the requirements form field as Agno's continue_team_run sends it:
// confirmed, the member's tool runs; rejected and streamed, the events go on from
// TeamRunContinued and the member reads the note. A paused team run is cancelled
// with one terminal event; a continue after it is a 409.
func TestContinueTeamOverHTTP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.db")
	var sent atomic.Int32
	open := func() *env {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return newEnv(t, Config{Store: st, Teams: []*team.Team{mailTeam(&sent)}})
	}
	a, b := open(), open()
	pause := func() (string, map[string]any) {
		t.Helper()
		code, out := a.do("POST", "/teams/office/runs", formType, form("message", "mail ada", "stream", "false", "session_id", "s"))
		reqs, _ := out["requirements"].([]any)
		if code != http.StatusOK || out["status"] != "PAUSED" || len(reqs) != 1 {
			t.Fatalf("team run: %d %v, want PAUSED with one requirement", code, out)
		}
		req := reqs[0].(map[string]any)
		if req["member_agent_id"] != "mailer" || req["member_agent_name"] != "Mailer" || req["member_run_id"] == "" || req["tool_execution"] == nil {
			t.Fatalf("requirement %v", req)
		}
		return out["run_id"].(string), req
	}

	runID, req := pause()
	cont := "/teams/office/runs/" + runID + "/continue"
	code, out := b.do("POST", cont, formType, form("requirements", agnoRequirements(req, true, ""), "stream", "false", "session_id", "s"))
	if code != http.StatusOK || out["status"] != "COMPLETED" || out["content"] != "team: Sending. done: sent to ada" || sent.Load() != 1 {
		t.Fatalf("continue, confirmed: %d %v (sent %d)", code, out, sent.Load())
	}
	if code, out := b.do("POST", cont, formType, form("requirements", agnoRequirements(req, true, ""), "stream", "false")); code != http.StatusConflict {
		t.Fatalf("continue of a completed team run: %d %v, want 409", code, out)
	}

	t.Run("rejected, streamed", func(t *testing.T) {
		runID, req := pause()
		s := b.openStream("POST", "/teams/office/runs/"+runID+"/continue", formType,
			form("requirements", agnoRequirements(req, false, "not ada"), "session_id", "s"))
		fs := s.rest()
		if len(fs) < 2 || fs[0].ev.Event != run.EventTeamRunContinued || fs[len(fs)-1].ev.Event != run.EventTeamRunCompleted ||
			fs[len(fs)-1].ev.Content != "team: Sending. done: not ada" {
			t.Fatalf("continued stream: %v", events(fs))
		}
		var member bool
		for _, f := range fs {
			member = member || f.ev.Event == run.EventRunContinued && f.ev.RunID == req["member_run_id"]
		}
		if !member {
			t.Errorf("the member's RunContinued is not in the team's stream: %v", events(fs))
		}
	})
	t.Run("approval", func(t *testing.T) {
		runID, _ := pause()
		code, out := b.do("GET", "/approvals?team_id=office", "", "")
		data, _ := out["data"].([]any)
		if code != http.StatusOK || len(data) != 1 {
			t.Fatalf("GET /approvals?team_id=office: %d %v", code, out)
		}
		if ap := data[0].(map[string]any); ap["id"] != runID || ap["team_id"] != "office" || ap["source_type"] != "team" || ap["tool_name"] != "send_mail" {
			t.Fatalf("approval %v", ap)
		}
		if code, out := b.do("POST", "/approvals/"+runID+"/resolve", "application/json", `{"status": "approved", "resolved_by": "ops"}`); code != http.StatusOK || out["status"] != "approved" {
			t.Fatalf("resolve: %d %v", code, out)
		}
		s := b.openStream("POST", "/teams/office/runs/"+runID+"/resume", formType, form("last_event_index", "-1"))
		if fs := s.rest(); fs[len(fs)-1].ev.Event != run.EventTeamRunCompleted || fs[len(fs)-1].ev.Content != "team: Sending. done: sent to ada" {
			t.Fatalf("after the approval: %s", strings.Join(events(fs), " "))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		runID, req := pause()
		code, out := b.do("POST", "/teams/office/runs/"+runID+"/cancel", "", "")
		if code != http.StatusOK || out["status"] != "CANCELLED" {
			t.Fatalf("cancel of a paused team run: %d %v", code, out)
		}
		if code, out := b.do("POST", "/teams/office/runs/"+runID+"/continue", formType,
			form("requirements", agnoRequirements(req, true, ""), "stream", "false")); code != http.StatusConflict {
			t.Fatalf("continue of a cancelled team run: %d %v, want 409", code, out)
		}
		s := b.openStream("POST", "/teams/office/runs/"+runID+"/resume", formType, form("last_event_index", "-1"))
		terminal := 0
		fs := s.rest()
		for _, f := range fs {
			if f.ev.RunID == runID && f.ev.Event.Terminal() {
				terminal++
			}
		}
		if terminal != 1 || fs[len(fs)-1].ev.Event != run.EventTeamRunCancelled {
			t.Fatalf("replayed: %d terminal events of the team run, %s", terminal, strings.Join(events(fs), " "))
		}
	})
}
