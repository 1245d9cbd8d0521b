package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/internal/eventually"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// mailTeam is a team whose leader gives, in one turn, the mailer a task (its call
// waits for a person) and a writer another (which ends at once), then answers
// with what both returned; written counts the writer's runs.
func mailTeam(sent, written *atomic.Int32) *team.Team { return mailTeamOf(mailer(sent), written) }

// mailTeamOf is mailTeam with the mailer given.
func mailTeamOf(mail *agent.Agent, written *atomic.Int32) *team.Team {
	writer := &agent.Agent{Name: "Writer", Model: &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		written.Add(1)
		return scripted.Turn{Text: "written"}
	}}}
	leader := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		var got []string
		for _, m := range req.Messages {
			if m.Role == model.RoleTool {
				got = append(got, m.Content)
			}
		}
		if len(got) > 0 {
			return scripted.Turn{Text: "team: " + strings.Join(got, " | ")}
		}
		return scripted.Turn{ToolCalls: []model.ToolCall{
			{ID: "lead_1", Name: "delegate_task_to_member", Arguments: json.RawMessage(`{"member_id":"mailer","task":"mail ada"}`)},
			{ID: "lead_2", Name: "delegate_task_to_member", Arguments: json.RawMessage(`{"member_id":"writer","task":"write"}`)},
		}}
	}}
	return &team.Team{Name: "Office", Model: leader, Members: []team.Member{team.Agent(mail, ""), team.Agent(writer, "")}}
}

// TestTeamPauses: a team member's call that requires confirmation pauses the
// team run (TeamRunPaused, PAUSED with the member's call and requirement, named
// by member) durably; another host on the same database continues it through the
// team's route kind: confirmed, the member's tool runs and the leader answers
// from both members (the writer ran once); rejected, the member reads the
// rejection; a paused team run is cancelled with one terminal event.
func TestTeamPauses(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for _, tc := range []struct {
				name    string
				confirm *bool
				content string
				status  run.Status
			}{
				{"confirmed", ptr(true), "team: Sending. done: sent to ada | written", run.StatusCompleted},
				{"rejected", ptr(false), "team: Sending. done: not now | written", run.StatusCompleted},
				{"cancelled", nil, "", run.StatusCancelled},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var sent, written atomic.Int32
					a := startHost(t, sts[0], Options{Replica: "A", Teams: []*team.Team{mailTeam(&sent, &written)}})
					b := startHost(t, sts[1], Options{Replica: "B", Teams: []*team.Team{mailTeam(&sent, &written)}})
					r, err := a.Start(Request{Kind: run.KindTeam, Component: "office", Input: "mail ada and write"})
					if err != nil {
						t.Fatal(err)
					}
					out := r.Exec().Wait()
					evs := r.Exec().Log.Events()
					last := evs[len(evs)-1]
					if out.Status != run.StatusPaused || len(out.Tools) != 1 || out.Tools[0].ToolName != "send_mail" ||
						len(out.Requirements) != 1 || out.Requirements[0].MemberAgentID != "mailer" || out.Requirements[0].MemberRunID == "" ||
						last.Event != run.EventTeamRunPaused || last.RunID != out.RunID {
						t.Fatalf("team run: %s, tools %+v, requirements %+v, last event %s", out.Status, out.Tools, out.Requirements, last.Event)
					}
					if sent.Load() != 0 || written.Load() != 1 {
						t.Fatalf("before the decision: sent %d, written %d; want 0, 1", sent.Load(), written.Load())
					}
					if rec, err := sts[1].GetRun(ctx, out.RunID); err != nil || rec.Status != run.StatusPaused || !rec.LeaseUntil.IsZero() {
						t.Fatalf("stored: %v %v", rec, err)
					}
					if tc.confirm == nil {
						st, _, err := b.Cancel(ctx, out.RunID, "", true)
						if err != nil || st != run.StatusCancelled {
							t.Fatalf("cancel a paused team run: %s %v", st, err)
						}
						rec, err := sts[0].GetRun(ctx, out.RunID)
						if err != nil || rec.Status != run.StatusCancelled {
							t.Fatalf("stored after cancel: %v %v", rec, err)
						}
						stored, err := sts[0].Events(ctx, out.RunID, 0, 1000)
						if err != nil {
							t.Fatal(err)
						}
						terminal := 0
						for _, ev := range stored {
							if ev.Type == run.EventTeamRunCompleted || ev.Type == run.EventTeamRunCancelled || ev.Type == run.EventTeamRunError {
								terminal++
							}
						}
						if terminal != 1 || stored[len(stored)-1].Type != run.EventTeamRunCancelled {
							t.Fatalf("stored events end %s with %d terminal events of the team run", stored[len(stored)-1].Type, terminal)
						}
						return
					}
					d := out.Tools[0]
					d.Confirmed = tc.confirm
					if !*tc.confirm {
						d.ConfirmationNote = "not now"
					}
					c, err := b.Continue(ctx, ContinueRequest{Kind: run.KindTeam, Component: "office", RunID: out.RunID, Tools: []run.ToolExecution{d}})
					if err != nil {
						t.Fatal(err)
					}
					done := c.Exec().Wait()
					if done.Status != tc.status || done.Content != tc.content {
						t.Fatalf("continued: %s %q (%s); want %s %q", done.Status, done.Content, done.Error, tc.status, tc.content)
					}
					if want := int32(map[bool]int{true: 1, false: 0}[*tc.confirm]); sent.Load() != want || written.Load() != 1 {
						t.Errorf("sent %d (want %d), written %d (want 1)", sent.Load(), want, written.Load())
					}
					if len(done.MemberResponses) != 2 {
						t.Errorf("member responses: %d, want 2", len(done.MemberResponses))
					}
					first := c.Exec().Log.Events()[0]
					if first.Event != run.EventTeamRunContinued || first.EventIndex != out.Paused.NextEvent {
						t.Errorf("first event of the continue: %s at %d; want TeamRunContinued at %d", first.Event, first.EventIndex, out.Paused.NextEvent)
					}
					if _, err := a.Continue(ctx, ContinueRequest{Kind: run.KindTeam, Component: "office", RunID: out.RunID, Tools: []run.ToolExecution{d}}); !errors.Is(err, run.ErrNotPaused) {
						t.Errorf("continue again: %v, want run.ErrNotPaused", err)
					}
				})
			}
		})
	}
}

// TestTeamPauseExpiry: a team run paused on a member's call whose pause
// expires is rejected and continued by the host's expiry loop (the member reads
// why), on SQLite and PostgreSQL.
func TestTeamPauseExpiry(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			var sent, written atomic.Int32
			m := mailer(&sent)
			m.Tools[0] = tool.With(m.Tools[0], tool.Expires(time.Millisecond, run.ExpiryReject))
			h := startHost(t, sts[0], Options{Teams: []*team.Team{mailTeamOf(m, &written)}, ExpiryInterval: 10 * time.Millisecond})
			r, err := h.Start(Request{Kind: run.KindTeam, Component: "office", Input: "mail ada and write"})
			if err != nil {
				t.Fatal(err)
			}
			if out := r.Exec().Wait(); out.Status != run.StatusPaused || out.Paused.ExpiresAt.IsZero() {
				t.Fatalf("paused %s, %+v", out.Status, out.Paused)
			}
			want := "team: Sending. done: " + run.ReasonExpired + " | written"
			eventually.Succeeds(t, 10*time.Second, func() error {
				rec, err := sts[0].GetRun(context.Background(), r.ID())
				if err != nil || rec.Status != run.StatusCompleted || rec.Output.Content != want {
					return fmt.Errorf("run: %v %v %q; want COMPLETED %q", rec.Status, err, rec.Output.Content, want)
				}
				return nil
			})
			if sent.Load() != 0 {
				t.Error("a tool ran without a confirmation")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestTeamPauseInMemory: a host without a store continues, and cancels, a team
// run paused in memory.
func TestTeamPauseInMemory(t *testing.T) {
	var sent, written atomic.Int32
	h := startHost(t, nil, Options{Teams: []*team.Team{mailTeam(&sent, &written)}})
	ctx := context.Background()
	pause := func() *run.Output {
		r, err := h.Start(Request{Kind: run.KindTeam, Component: "office", Input: "mail ada and write"})
		if err != nil {
			t.Fatal(err)
		}
		out := r.Exec().Wait()
		if out.Status != run.StatusPaused {
			t.Fatalf("team run ended %s, want PAUSED", out.Status)
		}
		return out
	}
	out := pause()
	c, err := h.Continue(ctx, ContinueRequest{Kind: run.KindTeam, Component: "office", RunID: out.RunID, Tools: confirm(out, true, "")})
	if err != nil {
		t.Fatal(err)
	}
	if done := c.Exec().Wait(); done.Status != run.StatusCompleted || done.Content != "team: Sending. done: sent to ada | written" || sent.Load() != 1 {
		t.Fatalf("continued: %s %q", done.Status, done.Content)
	}
	out = pause()
	if st, known, err := h.Cancel(ctx, out.RunID, "", true); err != nil || !known || st != run.StatusCancelled {
		t.Fatalf("cancel of a paused team run in memory: %s %v %v", st, known, err)
	}
	if _, err := h.Continue(ctx, ContinueRequest{Kind: run.KindTeam, Component: "office", RunID: out.RunID, Tools: confirm(out, true, "")}); !errors.Is(err, run.ErrNotPaused) {
		t.Fatalf("continue of a cancelled team run: %v, want ErrNotPaused", err)
	}
}

// TestTeamStepPausesDurably: a workflow whose top-level team step's member
// pauses is PAUSED (the team as the step's executor), and another host on the
// same database continues it with Agno's executor requirements decided: the
// member's tool runs and the workflow completes with the team's answer.
func TestTeamStepPausesDurably(t *testing.T) {
	for name, sts := range pauseStores(t) {
		t.Run(name, func(t *testing.T) {
			var sent, written atomic.Int32
			wf := func() *workflow.Workflow {
				return &workflow.Workflow{Name: "Desk", Steps: []workflow.Step{team.Step("office", mailTeam(&sent, &written), "")}}
			}
			a := startHost(t, sts[0], Options{Replica: "A", Workflows: []*workflow.Workflow{wf()}})
			b := startHost(t, sts[1], Options{Replica: "B", Workflows: []*workflow.Workflow{wf()}})
			r, err := a.Start(Request{Kind: run.KindWorkflow, Component: "desk", Input: "mail ada and write"})
			if err != nil {
				t.Fatal(err)
			}
			out := r.Exec().Wait()
			if out.Status != run.StatusPaused || len(out.StepRequirements) != 1 || out.StepRequirements[0].ExecutorType != "team" {
				t.Fatalf("workflow: %s %+v", out.Status, out.StepRequirements)
			}
			d := out.StepRequirements[0]
			reqs := make([]run.Requirement, len(d.ExecutorRequirements))
			for i, rq := range d.ExecutorRequirements {
				rq.Confirmation = ptr(true) // Agno's RunRequirement.confirm()
				reqs[i] = rq
			}
			d.ExecutorRequirements = reqs
			c, err := b.Continue(context.Background(), ContinueRequest{Kind: run.KindWorkflow, Component: "desk", RunID: out.RunID, Steps: []run.StepRequirement{d}})
			if err != nil {
				t.Fatal(err)
			}
			done := c.Exec().Wait()
			if done.Status != run.StatusCompleted || done.Content != "team: Sending. done: sent to ada | written" || sent.Load() != 1 || written.Load() != 1 {
				t.Fatalf("continued: %s %q (%s), sent %d, written %d", done.Status, done.Content, done.Error, sent.Load(), written.Load())
			}
		})
	}
}
