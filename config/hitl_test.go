package config

import (
	"strings"
	"testing"
	"time"

	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

func TestToolFlags(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents:
  careful:
    model: m
    tools: [{name: hackernews, requires_confirmation: true, expiry: 10m, on_expiry: reject}]
  asking:
    model: m
    tools:
      - {name: hackernews, requires_user_input: [topic, {name: count, type: int, description: How many}]}
  outside: {model: m, tools: [{name: hackernews, external_execution: true}]}
  plain: {model: m, tools: [hackernews]}
`))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string][]tool.Tool{}
	for _, a := range cfg.Agents {
		byID[a.AgentID()] = a.Tools
	}
	for _, tl := range byID["careful"] {
		if c := tool.ControlOf(tl); !c.RequiresConfirmation || c.Expiry != 10*time.Minute || c.OnExpiry != run.ExpiryReject {
			t.Errorf("careful's %s does not require confirmation", tl.Definition().Name)
		}
	}
	c := tool.ControlOf(byID["asking"][0])
	if !c.RequiresUserInput || len(c.UserInputFields) != 2 || c.UserInputFields[1].Name != "count" || c.UserInputFields[1].FieldType != "int" ||
		c.UserInputFields[0].FieldType != "str" {
		t.Errorf("asking's control: %+v", c)
	}
	if !tool.ControlOf(byID["outside"][0]).ExternalExecution {
		t.Error("outside's tool is not executed externally")
	}
	if len(byID["careful"]) != len(byID["plain"]) || tool.ControlOf(byID["plain"][0]).Pauses() {
		t.Errorf("plain: %d tools, control %+v", len(byID["plain"]), tool.ControlOf(byID["plain"][0]))
	}
}

func TestToolFlagsErrors(t *testing.T) {
	t.Parallel()
	_, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents:
  a:
    model: m
    tools:
      - {name: hackernews, requires_confirmation: yes please}
      - {name: nope}
      - {name: hackernews, requires_user_input: [{name: n, type: complex}]}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"kern.yaml:6:", "requires_confirmation must be true or false", `kern.yaml:7:`, `unknown tool "nope"`, `kern.yaml:8:`, "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestScriptedTurns(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models:
  m:
    provider: scripted
    turns:
      - {text: "Looking. ", tool_calls: [{name: get_top_hackernews_stories, arguments: {num_stories: 2}}]}
      - {text: Done.}
agents: {a: {model: m, tools: [hackernews]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Agents[0].Model.(*scripted.Model)
	if len(m.Turns) != 2 || m.Turns[0].Text != "Looking. " || len(m.Turns[0].ToolCalls) != 1 ||
		m.Turns[0].ToolCalls[0].Name != "get_top_hackernews_stories" || string(m.Turns[0].ToolCalls[0].Arguments) != `{"num_stories":2}` ||
		m.Turns[1].Text != "Done." {
		t.Fatalf("turns: %+v", m.Turns)
	}
	_, err = Parse("kern.yaml", []byte(`models: {m: {provider: scripted, turns: [{tool_calls: [{arguments: [1]}]}]}}
agents: {a: {model: m}}
`))
	if err == nil || !strings.Contains(err.Error(), "kern.yaml:1:") || !strings.Contains(err.Error(), "name") {
		t.Fatalf("a tool call without a name: %v", err)
	}
}

func TestStepPauses(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - {name: draft, agent: a}
      - {name: publish, agent: a, requires_confirmation: true, on_reject: skip, confirmation_message: "Publish?", expiry: 1h}
      - {name: tweet, agent: a, requires_user_input: [topic]}
`))
	if err != nil {
		t.Fatal(err)
	}
	steps := cfg.Workflows[0].Steps
	if p := steps[0].(*workflow.Task).Pause; p != nil {
		t.Errorf("draft pauses: %+v", p)
	}
	if p := steps[1].(*workflow.Task).Pause; p == nil || !p.RequiresConfirmation || p.OnReject != workflow.OnRejectSkip || p.ConfirmationMessage != "Publish?" || p.Expiry != time.Hour {
		t.Errorf("publish's pause: %+v", p)
	}
	if p := steps[2].(*workflow.Task).Pause; p == nil || !p.RequiresUserInput || len(p.UserInputFields) != 1 || p.UserInputFields[0].Name != "topic" {
		t.Errorf("tweet's pause: %+v", p)
	}
	_, err = Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - {name: publish, agent: a, on_reject: later}
`))
	for _, want := range []string{"kern.yaml:6:", `on_reject must be skip or cancel, not "later"`, "requires_confirmation: true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	_, err = Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - parallel: {name: fan, steps: [{name: inner, agent: a, requires_confirmation: true}]}
`))
	if err == nil || !strings.Contains(err.Error(), "only a top-level step") {
		t.Errorf("a nested step that pauses: %v", err)
	}
}

// TestConditionPause: a condition may have else steps, and, at the top level,
// wait for a confirmation (no if needed; on_reject else by default, skip or
// cancel); on_reject else is a condition's only.
func TestConditionPause(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - condition:
          name: gate
          requires_confirmation: true
          confirmation_message: Publish?
          steps: [{name: publish, agent: a}]
          else: [{name: archive, agent: a}]
      - condition:
          name: long
          if: len(previous) > 100
          on_reject: skip
          requires_confirmation: true
          expiry: 1h
          steps: [{name: shorten, agent: a}]
      - condition: {name: plain, if: 'true', steps: [{name: keep, agent: a}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	steps := cfg.Workflows[0].Steps
	gate := steps[0].(*workflow.Condition)
	if p := gate.Pause; p == nil || !p.RequiresConfirmation || p.OnReject != workflow.OnRejectElse || p.ConfirmationMessage != "Publish?" ||
		gate.If != nil || len(gate.Else) != 1 {
		t.Errorf("gate: pause %+v, if set %v, else %d", p, gate.If != nil, len(gate.Else))
	}
	if c := steps[1].(*workflow.Condition); c.Pause == nil || c.Pause.OnReject != workflow.OnRejectSkip || c.Pause.Expiry != time.Hour || c.If == nil {
		t.Errorf("long: %+v", c.Pause)
	}
	if c := steps[2].(*workflow.Condition); c.Pause != nil || c.Else != nil {
		t.Errorf("plain: %+v %v", c.Pause, c.Else)
	}
	for _, tc := range []struct{ yaml, want string }{
		{`      - {name: publish, agent: a, requires_confirmation: true, on_reject: else}`, `not "else" (else is for a condition)`},
		{`      - condition: {name: c, requires_confirmation: true, on_reject: later, steps: [{name: s, agent: a}]}`, `on_reject must be else, skip or cancel, not "later"`},
		{`      - condition: {name: c, steps: [{name: s, agent: a}]}`, "missing if"},
		{`      - steps: {name: outer, steps: [{condition: {name: c, requires_confirmation: true, steps: [{name: s, agent: a}]}}]}`, "only a top-level condition"},
	} {
		_, err := Parse("kern.yaml", []byte("models: {m: {provider: scripted, text: done}}\nagents: {a: {model: m}}\nworkflows:\n  w:\n    steps:\n"+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v lacks %q", tc.yaml, err, tc.want)
		}
	}
}

func TestRouterAsks(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - router:
          name: pick
          requires_user_input: true
          user_input_message: Where to?
          allow_multiple_selections: true
          choices: [{name: blog, agent: a}, {name: mail, agent: a}]
`))
	if err != nil {
		t.Fatal(err)
	}
	rt := cfg.Workflows[0].Steps[0].(*workflow.Router)
	if rt.Ask == nil || rt.Ask.Message != "Where to?" || !rt.Ask.AllowMultiple || rt.Route != nil || len(rt.Choices) != 2 {
		t.Fatalf("router: %+v", rt)
	}
	_, err = Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents: {a: {model: m}}
workflows:
  w:
    steps:
      - router: {name: pick, allow_multiple_selections: true, choices: [{name: blog, agent: a}]}
`))
	if err == nil || !strings.Contains(err.Error(), "kern.yaml:6:") || !strings.Contains(err.Error(), `route`) {
		t.Fatalf("a router with neither route nor requires_user_input: %v", err)
	}
}
