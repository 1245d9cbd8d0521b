package config

import (
	"strings"
	"testing"

	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/tool"
)

func TestToolFlags(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("kern.yaml", []byte(`models: {m: {provider: scripted, text: done}}
agents:
  careful:
    model: m
    tools: [{name: hackernews, requires_confirmation: true}]
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
		if !tool.ControlOf(tl).RequiresConfirmation {
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
