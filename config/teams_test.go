package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/team"
)

func TestParseTeams(t *testing.T) {
	src := `models:
  m: {provider: scripted, text: hi}
agents:
  a: {model: m}
  b: {model: m}
teams:
  inner: {model: m, members: [a], mode: route}
  outer: {name: Outer, model: m, members: [inner, b], mode: broadcast, instructions: Work.}
workflows:
  w:
    steps: [{name: desk, team: outer}]
`
	cfg, err := Parse("kern.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Teams) != 2 {
		t.Fatalf("teams = %d", len(cfg.Teams))
	}
	outer := cfg.Teams[1]
	if outer.Name != "Outer" || outer.Mode != team.ModeBroadcast || len(outer.Members) != 2 || outer.Members[0] != team.Member(cfg.Teams[0]) {
		t.Errorf("outer = %+v", outer)
	}
	out, err := cfg.Workflows[0].Run(t.Context(), "go")
	if err != nil || out.Status != run.StatusCompleted {
		t.Fatalf("workflow with a team step: %v, %v", out, err)
	}
}

func TestParseTeamsBad(t *testing.T) {
	head := "models:\n  m: {provider: scripted, text: hi}\nagents:\n  a: {model: m}\nteams:\n"
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"missing members", head + "  t: {model: m}\n", 6, "missing members"},
		{"empty members", head + "  t: {model: m, members: []}\n", 6, "non-empty list"},
		{"unknown member", head + "  t: {model: m, members: [zed]}\n", 6, `member "zed" is neither`},
		{"later team", head + "  t: {model: m, members: [u]}\n  u: {model: m, members: [a]}\n", 6, `member "u" is neither`},
		{"bad mode", head + "  t: {model: m, members: [a], mode: vote}\n", 6, `unknown mode "vote"`},
		{"unknown model", head + "  t: {model: x, members: [a]}\n", 6, `unknown model "x"`},
		{"unknown team step", head + "  t: {model: m, members: [a]}\nworkflows:\n  w: {steps: [{name: s, team: nope}]}\n", 8, `unknown team "nope"`},
		{"agent and team", head + "  t: {model: m, members: [a]}\nworkflows:\n  w: {steps: [{name: s, team: t, agent: a}]}\n", 8, "not both"},
	}
	for _, tt := range tests {
		_, err := Parse("kern.yaml", []byte(tt.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error %v, want Errors", tt.name, err)
			continue
		}
		if first := es[0]; first.Line != tt.line || !strings.Contains(first.Msg, tt.want) {
			t.Errorf("%s: %v\nwant line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}

// A team step that waits for a person's confirmation keeps it: the workflow
// pauses before the team runs.
func TestParseTeamStepPause(t *testing.T) {
	src := `models:
  m: {provider: scripted, text: hi}
agents:
  a: {model: m}
teams:
  desk: {model: m, members: [a], mode: route}
workflows:
  w:
    steps: [{name: publish, team: desk, requires_confirmation: true, on_reject: cancel}]
`
	cfg, err := Parse("kern.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Workflows[0].Run(t.Context(), "go")
	if out == nil || out.Status != run.StatusPaused || len(out.StepRequirements) != 1 {
		t.Fatalf("workflow with a team step that needs a confirmation: %+v, %v; want PAUSED", out, err)
	}
}
