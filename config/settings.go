package config

import (
	"encoding/json"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
)

// settingKeys are the keys of model settings, in a model entry and in an agent's
// settings mapping.
var settingKeys = []string{"temperature", "top_p", "max_tokens", "stop", "seed", "reasoning_effort", "parallel_tool_calls", "tool_choice", "extra"}

// settings reads the setting keys of f into model settings, reporting each bad value
// at its key's value. what names the entry in errors.
func (l *loader) settings(f map[string]*yaml.Node, what string) model.Settings {
	var s model.Settings
	for _, key := range settingKeys {
		n := resolve(f[key])
		if n == nil {
			continue
		}
		var one model.Settings // the key alone, so that Validate's complaint is about it
		if !l.setting(n, key, what, &one) {
			continue
		}
		if err := one.Validate(); err != nil {
			l.errorf(n, "%s %s: %v", what, key, err)
			continue
		}
		s = s.Merge(one)
	}
	return s
}

// setting decodes the value n of one setting key into s.
func (l *loader) setting(n *yaml.Node, key, what string, s *model.Settings) bool {
	bad := func(want string) bool {
		l.errorf(n, "%s %s must be %s, not %s", what, key, want, kind(n))
		return false
	}
	scalar := func(tags ...string) bool {
		if n.Kind != yaml.ScalarNode {
			return false
		}
		for _, t := range tags {
			if n.Tag == t {
				return true
			}
		}
		return false
	}
	switch key {
	case "temperature", "top_p":
		var f float64
		if !scalar("!!int", "!!float") || n.Decode(&f) != nil {
			return bad("a number")
		}
		if key == "temperature" {
			s.Temperature = &f
		} else {
			s.TopP = &f
		}
	case "max_tokens":
		var i int
		if !scalar("!!int") || n.Decode(&i) != nil {
			return bad("an integer")
		}
		if i <= 0 {
			l.errorf(n, "%s max_tokens must be positive, not %d", what, i)
			return false
		}
		s.MaxTokens = i
	case "seed":
		var i int64
		if !scalar("!!int") || n.Decode(&i) != nil {
			return bad("an integer")
		}
		s.Seed = &i
	case "stop":
		if scalar("!!str") {
			s.Stop = []string{n.Value}
			return true
		}
		if n.Kind != yaml.SequenceNode {
			return bad("a string or a list of strings")
		}
		for _, item := range n.Content {
			str, ok := l.str(resolve(item), what+" stop")
			if !ok {
				return false
			}
			s.Stop = append(s.Stop, str)
		}
	case "reasoning_effort", "tool_choice":
		if !scalar("!!str") {
			return bad("a string")
		}
		if key == "tool_choice" {
			s.ToolChoice = model.ToolChoice(n.Value)
		} else {
			s.ReasoningEffort = n.Value
		}
	case "parallel_tool_calls":
		var b bool
		if !scalar("!!bool") || n.Decode(&b) != nil {
			return bad("true or false")
		}
		s.ParallelToolCalls = &b
	case "extra":
		var m map[string]any
		if n.Kind != yaml.MappingNode || n.Decode(&m) != nil {
			return bad("a mapping")
		}
		if _, err := json.Marshal(m); err != nil {
			l.errorf(n, "%s extra cannot be sent as JSON: %v", what, err)
			return false
		}
		s.Extra = m
	}
	return true
}

// checkModelSettings reports settings the provider of m refuses, at the model entry.
// The tool choice is left to each agent, which knows its tools.
func (l *loader) checkModelSettings(n *yaml.Node, m model.Model, s model.Settings, what string) {
	s.ToolChoice = ""
	if err := model.Check(m, &model.Request{Settings: s}); err != nil {
		l.errorf(n, "%s: %v", what, err)
	}
}

// agentSettings reads an agent's settings mapping, whose keys override those of its
// model entry.
func (l *loader) agentSettings(n *yaml.Node, what string) model.Settings {
	n = resolve(n)
	if n == nil || isNull(n) {
		return model.Settings{}
	}
	f := l.fields(n, what+" settings", settingKeys...)
	if f == nil {
		return model.Settings{}
	}
	return l.settings(f, what+" settings")
}

// outputSchema reads an agent's output_schema, a JSON Schema written in YAML.
func (l *loader) outputSchema(n *yaml.Node, what string) *agent.OutputSchema {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	var v any
	if n.Kind != yaml.MappingNode || n.Decode(&v) != nil {
		l.errorf(n, "%s output_schema must be a mapping (a JSON Schema), not %s", what, kind(n))
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.errorf(n, "%s output_schema cannot be written as JSON: %v", what, err)
		return nil
	}
	s := agent.OutputJSON("", b)
	if err := s.Err(); err != nil {
		l.errorf(n, "%s output_schema: %v", what, err)
		return nil
	}
	return s
}
