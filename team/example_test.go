package team_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/team"
)

// A team in route mode hands the request to one member, whose answer is the team's.
func Example() {
	billing := &agent.Agent{ID: "billing", Name: "Billing", Model: scripted.New("Refund issued for order 7.")}
	tech := &agent.Agent{ID: "tech", Name: "Tech", Model: scripted.New("Try turning it off and on.")}
	// The leader's model chooses the member; a scripted one stands in for it here.
	leader := &scripted.Model{Turns: []scripted.Turn{{ToolCalls: []model.ToolCall{{Name: "delegate_task_to_member",
		Arguments: json.RawMessage(`{"member_id":"billing","task":"Refund order 7."}`)}}}}}
	support := &team.Team{Name: "Support", Model: leader, Mode: team.ModeRoute,
		Members: []team.Member{team.Agent(billing, "money matters"), team.Agent(tech, "broken things")}}

	out, err := support.Run(context.Background(), "Please refund order 7.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Status, out.Content)
	fmt.Println(len(out.MemberResponses), "member run:", out.MemberResponses[0].AgentID)
	// Output:
	// COMPLETED Refund issued for order 7.
	// 1 member run: billing
}
