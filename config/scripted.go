package config

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
)

// turns reads a scripted model's turns: its answers in conversation order, each
// {text, tool_calls: [{name, arguments}]}, so that an offline configuration calls
// tools as a real model would (the last turn repeats).
func (l *loader) turns(n *yaml.Node, what string) []scripted.Turn {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n, "%s must be a non-empty list of {text, tool_calls}, not %s", what, kind(n))
		return nil
	}
	var turns []scripted.Turn
	for i, item := range n.Content {
		w := fmt.Sprintf("%s[%d]", what, i)
		f := l.fields(resolve(item), w, "text", "tool_calls")
		if f == nil {
			continue
		}
		t := scripted.Turn{Text: l.optStr(f["text"], w+" text")}
		if c := resolve(f["tool_calls"]); c != nil {
			if c.Kind != yaml.SequenceNode {
				l.errorf(c, "%s tool_calls must be a list of {name, arguments}, not %s", w, kind(c))
				continue
			}
			for j, call := range c.Content {
				t.ToolCalls = append(t.ToolCalls, l.toolCall(resolve(call), fmt.Sprintf("%s tool_calls[%d]", w, j)))
			}
		}
		turns = append(turns, t)
	}
	return turns
}

// toolCall reads one scripted tool call: the tool's name and its arguments, a
// mapping written as YAML and sent as JSON.
func (l *loader) toolCall(n *yaml.Node, what string) model.ToolCall {
	f := l.fields(n, what, "name", "arguments")
	if f == nil || !l.required(n, f, what, "name") {
		return model.ToolCall{}
	}
	name, _ := l.str(resolve(f["name"]), what+" name")
	call := model.ToolCall{Name: name}
	if a := resolve(f["arguments"]); a != nil {
		var v map[string]any
		if a.Kind != yaml.MappingNode || a.Decode(&v) != nil {
			l.errorf(a, "%s arguments must be a mapping, not %s", what, kind(a))
			return call
		}
		b, err := json.Marshal(v)
		if err != nil {
			l.errorf(a, "%s arguments: %v", what, err)
			return call
		}
		call.Arguments = b
	}
	return call
}
