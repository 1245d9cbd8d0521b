package mcp_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/tools/mcp"
)

// A team's cancel reaches a member waiting on an MCP call (the server hears
// notifications/cancelled) and a member streaming beside it, at once.
func TestTeamCancelReachesMCPCall(t *testing.T) {
	transports(t, func(t *testing.T, c *mcp.Client, o *observer) {
		caller := &agent.Agent{ID: "caller", Name: "Caller", Toolsets: []tool.Toolset{c},
			Model: &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "slow"}}}, {Text: "never"}}}}
		writer := &agent.Agent{ID: "writer", Name: "Writer", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "one two"}}, Delay: time.Hour}}
		tm := &team.Team{Name: "Crew", Mode: team.ModeBroadcast, Members: []team.Member{team.Agent(caller, ""), team.Agent(writer, "")},
			Model: &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{
				{Name: "delegate_task_to_members", Arguments: json.RawMessage(`{"task":"go"}`)}}}}}}
		x, err := tm.Start(t.Context(), "go")
		if err != nil {
			t.Fatal(err)
		}
		o.next(t, "started slow")
		if st, err := tm.CancelRun(t.Context(), x.ID); st != run.StatusCancelled || err != nil {
			t.Fatalf("CancelRun = %s, %v", st, err)
		}
		o.next(t, "cancelled slow")
		out := x.Wait()
		if out.Status != run.StatusCancelled || len(out.MemberResponses) != 2 {
			t.Fatalf("team output: %s, %d member responses", out.Status, len(out.MemberResponses))
		}
		for _, mr := range out.MemberResponses {
			if mr.Status != run.StatusCancelled {
				t.Errorf("member %s: %s", mr.AgentID, mr.Status)
			}
		}
	})
}
