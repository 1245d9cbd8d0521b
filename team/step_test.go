package team_test

import (
	"context"
	"testing"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/workflow"
)

// A team as a workflow step: a child run of the workflow's, its events in the
// workflow's stream, and its output the step's.
func TestTeamStep(t *testing.T) {
	tm := &team.Team{Name: "Desk", Mode: team.ModeRoute, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("delegate_task_to_member", `{"member_id":"w","task":"write"}`)}}}},
		Members: []team.Member{team.Agent(member("w", "the article"), "")}}
	wf := &workflow.Workflow{Name: "Paper", Steps: []workflow.Step{team.Step("desk", tm, "the desk writes")}}
	if got := workflow.Describe(wf.Steps)[0]; got.Kind != "team" || got.TeamID != "desk" {
		t.Errorf("Describe = %+v", got)
	}
	var teamRun string
	var teamEvents int
	x, err := wf.Start(t.Context(), "news")
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range x.Stream {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event == run.EventTeamRunStarted {
			teamRun = ev.RunID
			if ev.WorkflowRunID != x.ID || ev.TeamID != "desk" || ev.StepName != "desk" {
				t.Errorf("TeamRunStarted in a workflow: %+v", ev.Origin)
			}
		}
		if ev.RunID == teamRun {
			teamEvents++
		}
	}
	out := x.Wait()
	if out.Status != run.StatusCompleted || out.Content != "the article" || teamEvents == 0 {
		t.Fatalf("workflow output %+v, %d team events", out, teamEvents)
	}
}

// Cancelling the workflow cancels the team step and every member at once.
func TestTeamStepCancel(t *testing.T) {
	tm := &team.Team{Name: "Crew", Mode: team.ModeBroadcast, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("delegate_task_to_members", `{"task":"go"}`)}}}},
		Members: []team.Member{team.Agent(streamingMember("s1"), ""), team.Agent(streamingMember("s2"), "")}}
	wf := &workflow.Workflow{Name: "W", Steps: []workflow.Step{team.Step("crew", tm, "")}}
	x, err := wf.Start(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	content := 0
	n := map[string]int{}
	for ev, err := range x.Stream {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event == run.EventRunContent {
			if content++; content == 2 {
				go wf.CancelRun(context.Background(), x.ID)
			}
		}
		if ev.Event.Terminal() {
			n[ev.RunID]++
		}
	}
	if out := x.Wait(); out.Status != run.StatusCancelled {
		t.Fatalf("workflow status %s", out.Status)
	}
	if len(n) != 4 { // the workflow, the team, two members
		t.Errorf("terminal events of %d runs, want 4: %v", len(n), n)
	}
	for id, c := range n {
		if c != 1 {
			t.Errorf("run %s: %d terminal events", id, c)
		}
	}
}
