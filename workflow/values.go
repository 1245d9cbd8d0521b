package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/kern-dev/kern/run"
)

// Errors of Previous and StepValue, which callers tell apart with errors.Is.
var (
	// ErrNoValue: the step produced no structured output (its content is text), or
	// there is no such step.
	ErrNoValue = errors.New("workflow: step has no structured output")
	// ErrValueType: the step's structured output does not decode into the type
	// asked for.
	ErrValueType = errors.New("workflow: step output does not match the type")
)

// Previous returns the structured output of the step before the one in belongs to,
// as a T: the value itself when that step was a function step whose
// StepOutput.Value is a T (shared, not copied: do not modify it), else its JSON
// decoded into a T (an agent step with an output schema, a step of a run that was
// resumed). It fails with ErrNoValue when that step's content is text, and with
// ErrValueType when its JSON does not decode into a T.
func Previous[T any](in *Input) (T, error) {
	if v, ok := in.prevValue.(T); ok {
		return v, nil
	}
	return decodeValue[T]("previous step", in.Previous, in.PreviousType)
}

// PreviousJSON returns the JSON of the previous step's structured output, and
// whether it had one.
func (in *Input) PreviousJSON() (json.RawMessage, bool) {
	return structured(in.Previous, in.PreviousType)
}

// StepValue returns the structured output of the finished step with the given name
// (see Input.Output) decoded into a T. It fails with ErrNoValue when no such step
// finished or its content is text, and with ErrValueType when its JSON does not
// decode into a T.
func StepValue[T any](in *Input, name string) (T, error) {
	res, ok := in.Output(name)
	if !ok {
		var zero T
		return zero, fmt.Errorf("step %q: %w: no such step finished", name, ErrNoValue)
	}
	return decodeValue[T](fmt.Sprintf("step %q", name), res.Content, res.ContentType)
}

// StepJSON returns the JSON of the structured output of a step's result, and
// whether it has one.
func StepJSON(res run.StepResult) (json.RawMessage, bool) {
	return structured(res.Content, res.ContentType)
}

func structured(content, contentType string) (json.RawMessage, bool) {
	if contentType == "" || contentType == "str" || !json.Valid([]byte(content)) {
		return nil, false
	}
	return json.RawMessage(content), true
}

// decodeValue decodes content, the output of what names, into a T.
func decodeValue[T any](what, content, contentType string) (T, error) {
	var v T
	raw, ok := structured(content, contentType)
	if !ok {
		return v, fmt.Errorf("%s: %w: its content is text", what, ErrNoValue)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%s: %w: its %s output does not decode into %T: %w", what, ErrValueType, contentType, v, err)
	}
	return v, nil
}

// encodeValue returns the content and content type of a function step's output
// whose Value is set: Value's JSON, and ContentType or Value's type name.
func encodeValue(out StepOutput) (string, string, error) {
	if out.Content != "" {
		return "", "", errors.New("step output has both Content and Value")
	}
	b, err := json.Marshal(out.Value)
	if err != nil {
		return "", "", fmt.Errorf("step output value: %w", err)
	}
	ct := out.ContentType
	if ct == "" {
		ct = typeName(out.Value)
	}
	return string(b), ct, nil
}

// typeName names v's type as a content type: its Go name (a pointer's element's),
// or run.ContentTypeJSON when it has none.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "" {
		return run.ContentTypeJSON
	}
	return t.Name()
}

// lastLeaf returns the result of the agent or function step whose content res
// carries: res itself, or the last of a container's steps, recursively.
func lastLeaf(res run.StepResult) run.StepResult {
	for len(res.Steps) > 0 {
		res = lastContent(res.Steps)
	}
	return res
}

// previous returns the result whose content in carries as Previous, for the first
// of a container's steps.
func (in *Input) previous() run.StepResult {
	return run.StepResult{Content: in.Previous, ContentType: in.PreviousType}
}
