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
// runs in a step inside a container. A top-level team given the task alone
// pauses.
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
	inner := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{&workflow.Steps{Name: "outer", Steps: []workflow.Step{team.Step("office", coord(), "")}}}}
	wout, err := inner.Run(context.Background(), "go")
	if err != nil || wout.Status != run.StatusCompleted || !strings.Contains(wout.Content, "cannot pause") {
		t.Fatalf("in a step inside a container: %v %s %q", err, wout.Status, wout.Content)
	}

	top, err := coord().Run(context.Background(), "go")
	if top.Status != run.StatusPaused || len(top.Requirements) != 1 || top.Requirements[0].MemberAgentID != "mailer" {
		t.Fatalf("top-level: %v %s %+v", err, top.Status, top.Requirements)
	}
	if sent.Load() != 0 {
		t.Errorf("the tool ran %d times without a confirmation", sent.Load())
	}
}

// TestTwoMembersPause: two members given tasks in one turn both pause on calls
// of one id; the team run shows them under ids of their own, and, continued
// with one confirmed and one rejected, each member gets its own decision.
func TestTwoMembersPause(t *testing.T) {
	var sentA, sentB atomic.Int32
	a, b := approver(&sentA), approver(&sentB)
	b.ID, b.Name = "courier", "Courier"
	leader := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		var got []string
		for _, m := range req.Messages {
			if m.Role == model.RoleTool {
				got = append(got, m.Content)
			}
		}
		if len(got) > 0 {
			return scripted.Turn{Text: strings.Join(got, " | ")}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{
			{ID: "l1", Name: "delegate_task_to_member", Arguments: json.RawMessage(`{"member_id":"mailer","task":"mail"}`)},
			{ID: "l2", Name: "delegate_task_to_member", Arguments: json.RawMessage(`{"member_id":"courier","task":"mail"}`)},
		}}
	}}
	tm := &team.Team{Name: "Office", Model: leader, Members: []team.Member{team.Agent(a, ""), team.Agent(b, "")}}
	out, _ := tm.Run(context.Background(), "go")
	if out.Status != run.StatusPaused || len(out.Tools) != 2 || out.Tools[0].ToolCallID == out.Tools[1].ToolCallID ||
		len(out.Requirements) != 2 || out.Requirements[1].ToolExecution.ToolCallID != out.Tools[1].ToolCallID {
		t.Fatalf("paused %s with tools %+v requirements %+v", out.Status, out.Tools, out.Requirements)
	}
	yes, no := true, false
	ds := []run.ToolExecution{out.Tools[0], out.Tools[1]}
	ds[0].Confirmed, ds[1].Confirmed, ds[1].ConfirmationNote = &yes, &no, "not you"
	resolved, err := run.Resolve(out.RunID, out.Tools, ds)
	if err != nil {
		t.Fatal(err)
	}
	done, err := tm.Run(context.Background(), "go", run.WithID(out.RunID),
		run.WithResume(&run.Resume{NextEvent: out.Paused.NextEvent, Paused: out.Paused, Decisions: resolved}))
	if err != nil || done.Status != run.StatusCompleted || done.Content != "done: sent | done: not you" {
		t.Fatalf("continued: %v %s %q", err, done.Status, done.Content)
	}
	if sentA.Load() != 1 || sentB.Load() != 0 {
		t.Errorf("sent by the mailer %d (want 1), by the courier %d (want 0)", sentA.Load(), sentB.Load())
	}
}

// TestTeamStepPauses: a team in a top-level workflow step whose member pauses
// pauses the workflow (StepPaused with the team as the step's executor and its
// member's requirement); continued with the decision, the member's tool runs,
// the team answers and the workflow completes.
func TestTeamStepPauses(t *testing.T) {
	var sent atomic.Int32
	office := &team.Team{Name: "Office", Model: leaderOf(call("delegate_task_to_member", `{"member_id":"mailer","task":"mail"}`)),
		Members: []team.Member{team.Agent(approver(&sent), "")}}
	wf := &workflow.Workflow{Name: "wf", Steps: []workflow.Step{team.Step("office", office, "")}}
	out, err := wf.Run(context.Background(), "go")
	if out.Status != run.StatusPaused || len(out.StepRequirements) != 1 {
		t.Fatalf("workflow: %v %s %+v", err, out.Status, out.StepRequirements)
	}
	d := out.StepRequirements[0]
	if d.ExecutorType != "team" || d.ExecutorID != "office" || !d.RequiresExecutorInput || len(d.ExecutorRequirements) != 1 ||
		d.ExecutorRequirements[0].MemberAgentID != "mailer" {
		t.Fatalf("step requirement %+v", d)
	}
	yes := true
	te := *d.ExecutorRequirements[0].ToolExecution
	te.Confirmed = &yes
	d.ExecutorRequirements = []run.Requirement{{ID: d.ExecutorRequirements[0].ID, ToolExecution: &te}}
	decided, err := run.ResolveSteps(out.RunID, out.StepRequirements, []run.StepRequirement{d})
	if err != nil {
		t.Fatal(err)
	}
	done, err := wf.Run(context.Background(), "go", run.WithID(out.RunID), run.WithResume(&run.Resume{NextEvent: out.Paused.NextEvent,
		Paused: out.Paused, Steps: out.StepResults, StepDecisions: decided}))
	if err != nil || done.Status != run.StatusCompleted || done.Content != "leader read: done: sent" || sent.Load() != 1 {
		t.Fatalf("continued: %v %s %q, sent %d", err, done.Status, done.Content, sent.Load())
	}
}
