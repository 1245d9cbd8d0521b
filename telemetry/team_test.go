package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/telemetry"
)

// TestTeamSpans: a team whose leader delegates to a team member, whose own
// leader delegates to an agent: each leader's run is an invoke_agent span named
// by its team, each member's a child of its team's, the leaders' model
// requests are chat spans with the response's model and finish reason, and
// their delegations execute_tool spans.
func TestTeamSpans(t *testing.T) {
	o, exp := newObserver(t, false)
	call := func(member string) model.ToolCall {
		return model.ToolCall{ID: "call_" + member, Name: "delegate_task_to_member", Arguments: []byte(`{"member_id":"` + member + `","task":"t"}`)}
	}
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{ID: "gpt-w", Turns: []scripted.Turn{{Text: "written"}}}}
	inner := &team.Team{Name: "Inner", Model: &scripted.Model{ID: "gpt-inner", Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("writer")}}, {Text: "inner done"}}},
		Members: []team.Member{team.Agent(writer, "")}}
	outer := &team.Team{Name: "Outer", Mode: team.ModeRoute, Model: &scripted.Model{ID: "gpt-outer", Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{call("inner")}}}},
		Members: []team.Member{inner}}
	id := run.NewID()
	ctx, tr := o.Begin(context.Background(), telemetry.Run{ID: id, Kind: run.KindTeam, Component: outer.TeamID(), Name: outer.Name})
	x, err := outer.Start(ctx, "go", run.WithID(id))
	if err != nil {
		t.Fatal(err)
	}
	tr.Follow(x)
	if out := x.Wait(); out.Status != run.StatusCompleted {
		t.Fatalf("team run %s: %s", out.Status, out.Error)
	}
	o.Wait()
	m := byName(exp.GetSpans())
	root, innerSpan, writerSpan := m["invoke_agent Outer"], m["invoke_agent Inner"], m["invoke_agent Writer"]
	for name, s := range map[string]bool{"invoke_agent Outer": root.Name != "", "invoke_agent Inner": innerSpan.Name != "",
		"invoke_agent Writer": writerSpan.Name != "", "chat gpt-outer": m["chat gpt-outer"].Name != "",
		"chat gpt-inner": m["chat gpt-inner"].Name != "", "chat gpt-w": m["chat gpt-w"].Name != ""} {
		if !s {
			t.Errorf("no span %q in %d", name, len(exp.GetSpans()))
		}
	}
	if innerSpan.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Error("the inner team's span is not under the outer team's")
	}
	if writerSpan.Parent.SpanID() != innerSpan.SpanContext.SpanID() {
		t.Error("the writer's span is not under the inner team's")
	}
	if v, _ := attr(innerSpan, "gen_ai.agent.id"); v.AsString() != "inner" {
		t.Errorf("inner team's gen_ai.agent.id %q", v.AsString())
	}
	chat := m["chat gpt-inner"]
	if chat.Parent.SpanID() != innerSpan.SpanContext.SpanID() {
		t.Error("the inner leader's chat span is not under its team's")
	}
	if v, _ := attr(chat, "gen_ai.response.model"); v.AsString() != "gpt-inner" {
		t.Errorf("inner leader's chat gen_ai.response.model %q", v.AsString())
	}
	if v, _ := attr(chat, "gen_ai.response.finish_reasons"); len(v.AsStringSlice()) != 1 {
		t.Errorf("inner leader's chat finish reasons %v", v.AsStringSlice())
	}
	for _, s := range []string{"invoke_agent Outer", "invoke_agent Inner"} {
		if m[s].Status.Code == codes.Error {
			t.Errorf("%s: a completed team's span has status Error (%s)", s, m[s].Status.Description)
		}
	}
	del := m["execute_tool delegate_task_to_member"]
	if v, _ := attr(del, "gen_ai.tool.call.id"); del.Name == "" || (v.AsString() != "call_inner" && v.AsString() != "call_writer") {
		t.Errorf("no delegation span, or its call id %q", v.AsString())
	}
}
