package config

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
	"github.com/kern-dev/kern/workflow"
)

// namedTool builds the tools a mapping names, with Agno's flags applied to every
// tool of the toolkit: requires_confirmation, requires_user_input (a list of
// field names, or of {name, type, description}), external_execution.
func (l *loader) namedTool(n *yaml.Node, what string, seen map[string]bool) []tool.Tool {
	f := l.fields(n, what+" tool", "name", "requires_confirmation", "requires_user_input", "external_execution", "expiry", "on_expiry")
	if f == nil {
		return nil
	}
	name, ok := l.str(resolve(f["name"]), what+" tool name")
	if !ok {
		return nil
	}
	fn := l.tools[name]
	switch {
	case fn == nil:
		l.unknownTool(f["name"], what, name)
		return nil
	case seen[name]:
		l.errorf(f["name"], "%s: tool %q is listed twice", what, name)
		return nil
	}
	seen[name] = true
	var opts []tool.Option
	if l.optBool(f["requires_confirmation"], what+" tool "+name+" requires_confirmation", false) {
		opts = append(opts, tool.RequiresConfirmation())
	}
	if l.optBool(f["external_execution"], what+" tool "+name+" external_execution", false) {
		opts = append(opts, tool.ExternalExecution())
	}
	if n := f["requires_user_input"]; n != nil {
		opts = append(opts, tool.RequiresUserInput(l.inputFields(resolve(n), what+" tool "+name+" requires_user_input")...))
	}
	if d, on := l.expiry(f, what+" tool "+name); d > 0 {
		opts = append(opts, tool.Expires(d, on))
	}
	tools := fn()
	for i, t := range tools {
		tools[i] = tool.With(t, opts...)
	}
	return tools
}

// inputFields reads a list of user input fields: names, or {name, type,
// description} mappings (type one of str, int, float, bool, list, dict; str if
// omitted).
func (l *loader) inputFields(n *yaml.Node, what string) []run.UserInputField {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n, "%s must be a non-empty list of field names or {name, type, description}, not %s", what, kind(n))
		return nil
	}
	var fields []run.UserInputField
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			if name, ok := l.str(item, what+" field"); ok {
				fields = append(fields, run.UserInputField{Name: name, FieldType: "str"})
			}
			continue
		}
		f := l.fields(item, what+" field", "name", "type", "description")
		if f == nil || !l.required(item, f, what+" field", "name") {
			continue
		}
		name, ok := l.str(resolve(f["name"]), what+" field name")
		if !ok {
			continue
		}
		typ := l.optStr(f["type"], what+" field type")
		switch typ {
		case "":
			typ = "str"
		case "str", "int", "float", "bool", "list", "dict":
		default:
			l.errorf(f["type"], "%s field %q: type must be str, int, float, bool, list or dict, not %q", what, name, typ)
		}
		fields = append(fields, run.UserInputField{Name: name, FieldType: typ, Description: l.optStr(f["description"], what+" field description")})
	}
	return fields
}

// stepPauseKeys are the keys of an agent step that make it wait for a person.
var stepPauseKeys = []string{"requires_confirmation", "confirmation_message", "on_reject", "requires_user_input", "user_input_message",
	"expiry", "on_expiry"}

// stepPause reads what an agent step waits for from a person before it runs:
// requires_confirmation (with on_reject: skip or cancel, and a
// confirmation_message), requires_user_input (fields, and a user_input_message);
// nil when it waits for nothing.
func (l *loader) stepPause(f map[string]*yaml.Node, what string) *workflow.Pause {
	return l.pause(f, what, false)
}

// conditionPause reads whether a condition waits for a person's confirmation
// before it runs (requires_confirmation, with a confirmation_message and
// on_reject: else, the default, skip or cancel); nil when it does not.
func (l *loader) conditionPause(f map[string]*yaml.Node, what string) *workflow.Pause {
	p := l.pause(f, what, true)
	if p != nil && p.OnReject == "" {
		p.OnReject = workflow.OnRejectElse
	}
	return p
}

// pause reads a step's pause; isCondition allows on_reject: else.
func (l *loader) pause(f map[string]*yaml.Node, what string, isCondition bool) *workflow.Pause {
	p := &workflow.Pause{
		RequiresConfirmation: l.optBool(f["requires_confirmation"], what+" requires_confirmation", false),
		ConfirmationMessage:  l.optStr(f["confirmation_message"], what+" confirmation_message"),
		UserInputMessage:     l.optStr(f["user_input_message"], what+" user_input_message"),
	}
	if n := f["on_reject"]; n != nil {
		v := l.optStr(n, what+" on_reject")
		switch on := workflow.OnReject(v); {
		case on == workflow.OnRejectSkip || on == workflow.OnRejectCancel || isCondition && on == workflow.OnRejectElse:
			p.OnReject = on
		case isCondition:
			l.errorf(n, "%s: on_reject must be else, skip or cancel, not %q", what, v)
		default:
			l.errorf(n, "%s: on_reject must be skip or cancel, not %q (else is for a condition)", what, v)
		}
		if !p.RequiresConfirmation {
			l.errorf(n, "%s: on_reject applies to a step with requires_confirmation: true", what)
		}
	}
	if n := f["requires_user_input"]; n != nil {
		p.RequiresUserInput = true
		p.UserInputFields = l.inputFields(resolve(n), what+" requires_user_input")
	}
	p.Expiry, p.OnExpiry = l.expiry(f, what)
	if !p.RequiresConfirmation && !p.RequiresUserInput {
		if f["expiry"] != nil {
			l.errorf(f["expiry"], "%s: expiry applies to a step that waits for a person", what)
		}
		return nil
	}
	return p
}

// expiry reads how long a pause may last (expiry, a duration) and what ends it
// then (on_expiry: cancel or reject).
func (l *loader) expiry(f map[string]*yaml.Node, what string) (time.Duration, run.OnExpiry) {
	d := l.duration(f["expiry"], what+" expiry")
	var on run.OnExpiry
	if n := f["on_expiry"]; n != nil {
		on = run.OnExpiry(l.optStr(n, what+" on_expiry"))
		if on != run.ExpiryCancel && on != run.ExpiryReject {
			l.errorf(n, "%s: on_expiry must be cancel or reject, not %q", what, on)
		}
		if f["expiry"] == nil {
			l.errorf(n, "%s: on_expiry applies with an expiry", what)
		}
	}
	return d, on
}

// routeQuestion reads whether a router has a person choose its route
// (requires_user_input: true, Agno's name, with a user_input_message and
// allow_multiple_selections); nil when its route decides.
func (l *loader) routeQuestion(f map[string]*yaml.Node, what string) *workflow.RouteQuestion {
	if !l.optBool(f["requires_user_input"], what+" requires_user_input", false) {
		for _, k := range []string{"user_input_message", "allow_multiple_selections"} {
			if f[k] != nil {
				l.errorf(f[k], "%s: %s applies to a router with requires_user_input: true", what, k)
			}
		}
		return nil
	}
	return &workflow.RouteQuestion{Message: l.optStr(f["user_input_message"], what+" user_input_message"),
		AllowMultiple: l.optBool(f["allow_multiple_selections"], what+" allow_multiple_selections", false)}
}
