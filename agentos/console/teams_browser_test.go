package console_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/agentos"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/team"
)

// TestConsoleTeams: Home lists a team with its members; a team run started from
// the console shows each member run in its own lane beside the others, the
// team's own text apart, and, once it ended, the member runs as stored; the runs
// table filters by team.
func TestConsoleTeams(t *testing.T) {
	crew := &team.Team{Name: "Crew", Mode: team.ModeBroadcast, Model: &scripted.Model{Turns: []scripted.Turn{
		{ToolCalls: []model.ToolCall{{Name: "delegate_task_to_members", Arguments: json.RawMessage(`{"task":"go"}`)}}},
		{Text: "both <b>done</b>"}}},
		Members: []team.Member{
			team.Agent(&agent.Agent{ID: "ann", Name: "Ann", Model: scripted.New("ann's part")}, "writes"),
			team.Agent(&agent.Agent{ID: "bob", Name: "Bob", Model: scripted.New("bob's part")}, "checks"),
		}}
	s := newServer(t, agentos.Config{Teams: []*team.Team{crew}})
	ctx := browser(t)

	do(t, ctx, chromedp.Navigate(s.ts.URL+"/"))
	waitFor(t, ctx, `document.querySelector('#teams .card[data-team="crew"] h3')?.textContent === 'Crew'`)
	if got := eval[string](t, ctx, `document.querySelector('#teams .card .members').textContent`); got != "AnnBob" {
		t.Errorf("members shown %q", got)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#teams .card[data-team="crew"] a`)), chromedp.WaitVisible(chromedp.CSS("#message")))
	if v := eval[string](t, ctx, `document.querySelector('#component').value`); v != "team:crew" {
		t.Fatalf("start page picked %q", v)
	}
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#message"), "go"),
		chromedp.Click(chromedp.CSS("#start-form button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#run")))
	waitFor(t, ctx, `document.querySelector('#run-status').textContent === 'COMPLETED' && document.querySelector('#run-content')`)
	lanes := eval[[]string](t, ctx, `[...document.querySelectorAll('#lanes .group > .lane[data-member]')].map(l => l.dataset.member + ':' + l.querySelector('.text').textContent)`)
	if strings.Join(lanes, "|") != "ann:ann's part|bob:bob's part" && strings.Join(lanes, "|") != "bob:bob's part|ann:ann's part" {
		t.Errorf("member lanes %q", lanes)
	}
	if got := eval[string](t, ctx, laneText("")); got != "both <b>done</b>" {
		t.Errorf("the team's own text %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run-content').textContent`); got != "both <b>done</b>" {
		t.Errorf("team run content %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#run-component').textContent`); got != "Crew" {
		t.Errorf("run of %q", got)
	}
	waitFor(t, ctx, `document.querySelectorAll('#run-result .member-runs > li').length === 2`)
	stored := eval[string](t, ctx, `document.querySelector('#run-result .member-runs').textContent`)
	for _, want := range []string{"Ann", "Bob", "ann's part", "bob's part", "COMPLETED"} {
		if !strings.Contains(stored, want) {
			t.Errorf("stored member runs %q lack %q", stored, want)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#main b').length`); n != 0 {
		t.Errorf("the team's text ran as markup")
	}
	id := eval[string](t, ctx, `document.querySelector('#run').dataset.runId`)

	// Read back from the store on a new page load, its stream replayed to its end.
	do(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(s.ts.URL+"/#/run/"+id))
	waitFor(t, ctx, `document.querySelector('#run-connection').textContent === 'ended' && document.querySelectorAll('#lanes .lane[data-member]').length === 2`)

	do(t, ctx, chromedp.Navigate(s.ts.URL+"/#/runs?component=team_id:crew"))
	waitFor(t, ctx, `document.querySelectorAll('#runs-table tbody tr').length === 1 && !!document.querySelector('#runs-table tr[data-run-id="`+id+`"]')`)
}
