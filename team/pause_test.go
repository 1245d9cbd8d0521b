package team_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// approver is a member whose call waits for a person's confirmation.
func approver(sent *atomic.Int32) *agent.Agent {
	send := tool.Func("send_mail", "Sends a mail.", func(ctx context.Context, args struct{}) (string, error) {
		sent.Add(1)
		return "sent", nil
	}, tool.RequiresConfirmation())
	return &agent.Agent{ID: "mailer", Name: "Mailer", Tools: []tool.Tool{send}, Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		if last := req.Messages[len(req.Messages)-1]; last.Role == model.RoleTool {
			return scripted.Turn{Text: "done: " + last.Content}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{{ID: "c1", Name: "send_mail", Arguments: json.RawMessage(`{}`)}}}
	}}}
}

// leaderOf is a leader that makes one call, then answers with the tool results.
func leaderOf(c model.ToolCall) *scripted.Model {
	return &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		if last := req.Messages[len(req.Messages)-1]; last.Role == model.RoleTool {
			return scripted.Turn{Text: "leader read: " + last.Content}
		}
		c.ID = "l1"
		return scripted.Turn{ToolCalls: []model.ToolCall{c}}
	}}
}

// TestPauseWhereItCannot: a member that would pause where no person can be
// asked for the team fails instead (the leader reads why) and its tool never
// runs: given one task with the other members (broadcast), or in a team that
// runs inside a workflow step. A top-level team given the task alone pauses.
func TestPauseWhereItCannot(t *testing.T) {
	var sent atomic.Int32
	broadcast := &team.Team{Name: "All", Mode: team.ModeBroadcast, Model: leaderOf(call("delegate_task_to_members", `{"task":"mail"}`)),
		Members: []team.Member{team.Agent(approver(&sent), ""), team.Agent(member("writer", "written"), "")}}
	out, err := broadcast.Run(context.Background(), "go")
	if err != nil || out.Status != run.StatusCompleted || !strings.Contains(out.Content, "cannot pause") || !strings.Contains(out.Content, "written") {
		t.Fatalf("broadcast: %v %s %q", err, out.Status, out.Content)
	}

	coord := func() *team.Team {
		return &team.Team{Name: "Office", Model: leaderOf(call("delegate_task_to_member", `{"member_id":"mailer","task":"mail"}`)),
			Members: []team.Member{team.Agent(approver(&sent), "")}}
	}
	wf := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{team.Step("office", coord(), "")}}
	wout, err := wf.Run(context.Background(), "go")
	if err != nil || wout.Status != run.StatusCompleted || !strings.Contains(wout.Content, "cannot pause") {
		t.Fatalf("in a workflow step: %v %s %q", err, wout.Status, wout.Content)
	}

	top, err := coord().Run(context.Background(), "go")
	if top.Status != run.StatusPaused || len(top.Requirements) != 1 || top.Requirements[0].MemberAgentID != "mailer" {
		t.Fatalf("top-level: %v %s %+v", err, top.Status, top.Requirements)
	}
	if sent.Load() != 0 {
		t.Errorf("the tool ran %d times without a confirmation", sent.Load())
	}
}
