package agentos

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
)

func testTeams() []*team.Team {
	quick := &team.Team{Name: "Newsroom", Mode: team.ModeRoute, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "delegate_task_to_member", Arguments: json.RawMessage(`{"member_id":"writer","task":"write"}`)}}}}},
		Members: []team.Member{team.Agent(&agent.Agent{ID: "writer", Name: "Writer", Model: scripted.New("the article")}, "writes")}}
	slow := &team.Team{Name: "Crew", Mode: team.ModeBroadcast, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "delegate_task_to_members", Arguments: json.RawMessage(`{"task":"go"}`)}}}}},
		Members: []team.Member{
			team.Agent(&agent.Agent{ID: "s1", Name: "S1", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "one two"}}, Delay: time.Hour}}, ""),
			team.Agent(&agent.Agent{ID: "s2", Name: "S2", Model: &scripted.Model{Turns: []scripted.Turn{{Text: "one two"}}, Delay: time.Hour}}, ""),
		}}
	return []*team.Team{quick, slow}
}

// A team's run over /teams, with Agno's client's request shapes (run_team_stream:
// a form with message and stream=true; cancel_team_run: an empty POST).
func TestTeamRoutes(t *testing.T) {
	e := newEnv(t, Config{Teams: testTeams()})
	code, cfg := e.do("GET", "/config", "", "")
	if teams, _ := cfg["teams"].([]any); code != http.StatusOK || len(teams) != 2 {
		t.Fatalf("/config teams = %v", cfg["teams"])
	}
	if code, info := e.do("GET", "/teams/newsroom", "", ""); code != http.StatusOK || info["mode"] != "route" {
		t.Errorf("GET /teams/newsroom = %d %v", code, info)
	}
	if code, _ := e.do("GET", "/teams/nope", "", ""); code != http.StatusNotFound {
		t.Errorf("unknown team: %d", code)
	}

	s := e.openStream("POST", "/teams/newsroom/runs", "application/x-www-form-urlencoded", form("message", "news", "stream", "true", "session_id", "s1"))
	var teamRun string
	var last frame
	members := 0
	for {
		f, ok := s.next()
		if !ok {
			break
		}
		last = f
		switch {
		case f.event == string(run.EventTeamRunStarted):
			teamRun = f.ev.RunID
			if f.ev.TeamID != "newsroom" || f.ev.SessionID != "s1" {
				t.Errorf("TeamRunStarted = %s", f.data)
			}
		case f.event == string(run.EventRunStarted):
			members++
			if f.ev.ParentRunID != teamRun || f.ev.AgentID != "writer" {
				t.Errorf("member RunStarted = %s", f.data)
			}
		}
	}
	if last.event != string(run.EventTeamRunCompleted) || last.ev.Content != "the article" || members != 1 {
		t.Fatalf("last event %s %q, %d member runs", last.event, last.ev.Content, members)
	}
	code, got := e.do("GET", "/sessions/s1/runs/"+teamRun, "", "")
	if code != http.StatusOK || got["team_id"] != "newsroom" || got["status"] != "COMPLETED" {
		t.Errorf("stored team run = %d %v", code, got)
	}
	if members, _ := got["member_responses"].([]any); len(members) != 1 {
		t.Errorf("member_responses = %v", got["member_responses"])
	}
	if code, list := e.do("GET", "/teams/newsroom/runs", "", ""); code != http.StatusOK || len(list["list"].([]any)) != 1 {
		t.Errorf("GET /teams/newsroom/runs = %d %v", code, list)
	}
}

func TestTeamCancelOverHTTP(t *testing.T) {
	e := newEnv(t, Config{Teams: testTeams()})
	s := e.openStream("POST", "/teams/crew/runs", "application/x-www-form-urlencoded", form("message", "go"))
	var teamRun string
	content := 0
	terminals := map[string]int{}
	var last frame
	for {
		f, ok := s.next()
		if !ok {
			break
		}
		last = f
		if f.event == string(run.EventTeamRunStarted) {
			teamRun = f.ev.RunID
		}
		if f.event == string(run.EventRunContent) {
			if content++; content == 2 { // both members stream
				code, ans := e.do("POST", "/teams/crew/runs/"+teamRun+"/cancel", "", "")
				if code != http.StatusOK || ans["status"] != "CANCELLED" {
					t.Errorf("cancel = %d %v", code, ans)
				}
			}
		}
		if run.EventType(f.event).Terminal() {
			terminals[f.ev.RunID]++
		}
	}
	if last.event != string(run.EventTeamRunCancelled) {
		t.Errorf("last event = %s", last.event)
	}
	if len(terminals) != 3 {
		t.Errorf("terminal events: %v, want the team's and two members'", terminals)
	}
	for id, n := range terminals {
		if n != 1 {
			t.Errorf("run %s: %d terminal events", id, n)
		}
	}
	if !strings.Contains(last.data, `"team_id":"crew"`) {
		t.Errorf("TeamRunCancelled = %s", last.data)
	}
}
