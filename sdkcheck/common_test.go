package sdkcheck_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kern-dev/kern/model"
)

// kernResult is what one of kern's streams delivered: the text, the tool calls, the
// usage and finish reason of its last chunk, and the error that ended it.
type kernResult struct {
	text   string
	calls  []model.ToolCall
	usage  *model.Usage
	finish model.FinishReason
	err    error
}

// collectKern ranges over one stream of m.
func collectKern(ctx context.Context, m model.Model, req *model.Request) kernResult {
	var r kernResult
	var sb strings.Builder
	for c, err := range m.Stream(ctx, req) {
		if err != nil {
			r.err = err
			break
		}
		sb.WriteString(c.Text)
		r.calls = append(r.calls, c.ToolCalls...)
		if c.Usage != nil {
			r.usage = c.Usage
		}
		if c.FinishReason != "" {
			r.finish = c.FinishReason
		}
	}
	r.text = sb.String()
	return r
}

// call is a tool call as either client reports it, for comparison.
type call struct{ ID, Name, Args string }

func kernCalls(cs []model.ToolCall) []call {
	var out []call
	for _, c := range cs {
		out = append(out, call{c.ID, c.Name, string(c.Arguments)})
	}
	return out
}

// ask is a one-message request.
func ask(text string) *model.Request {
	return &model.Request{Messages: []model.Message{{Role: model.RoleUser, Content: text}}}
}

// fieldMeta is the metadata both SDKs keep for every decoded field (respjson.Field).
type fieldMeta interface {
	Valid() bool
	Raw() string
}

// shapeReport is what checkShape found in a value the SDK decoded.
type shapeReport struct {
	// invalid lists fields whose JSON value had the wrong type for the SDK's Go type
	// (the SDK keeps them as "invalid": present, not null, but not decodable).
	invalid []string
	// missing lists fields the SDK documents as always sent (api:"required") that
	// were absent.
	missing []string
}

// checkShape walks v, a value an SDK decoded from JSON, and reports fields that were
// sent with a type the SDK cannot decode, and required fields that were absent. Both
// SDKs record this in the JSON metadata struct of every decoded object.
func checkShape(v any) shapeReport {
	var r shapeReport
	if v == nil {
		return r // an event type the SDK does not know
	}
	walkShape(reflect.ValueOf(v), reflect.TypeOf(v).Name(), &r, 0)
	slices.Sort(r.invalid)
	r.invalid = slices.Compact(r.invalid)
	slices.Sort(r.missing)
	r.missing = slices.Compact(r.missing)
	return r
}

var metaType = reflect.TypeFor[fieldMeta]()

func walkShape(v reflect.Value, path string, r *shapeReport, depth int) {
	if depth > 12 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkShape(v.Elem(), path, r, depth+1)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkShape(v.Index(i), path+"[]", r, depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		meta := v.FieldByName("JSON")
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Name == "JSON" {
				continue
			}
			name := path + "." + jsonName(f)
			if meta.IsValid() && meta.Kind() == reflect.Struct {
				if m := meta.FieldByName(f.Name); m.IsValid() && m.Type().Implements(metaType) {
					fm := m.Interface().(fieldMeta)
					raw := fm.Raw()
					switch {
					case raw != "" && raw != "null" && !fm.Valid():
						r.invalid = append(r.invalid, fmt.Sprintf("%s (%s: %.60s)", name, f.Type, raw))
					case raw == "" && strings.Contains(f.Tag.Get("api"), "required"):
						r.missing = append(r.missing, name)
					}
					if raw == "" || raw == "null" {
						continue // nothing below an absent field
					}
				}
			}
			walkShape(v.Field(i), name, r, depth+1)
		}
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" || name == "-" {
		return f.Name
	}
	return name
}

// newerFields are fields the SDKs mark as always sent (api:"required") that kern's
// fixtures leave out: they are newer than the recorded streams the fixtures follow
// (PROTOCOLS.md), and neither kern nor the SDKs' accumulators need them. A required
// field missing from a fixture that is not listed here fails the tests.
var newerFields = map[string]bool{
	// OpenAI Responses.
	"access_programs":    true,
	"cache_write_tokens": true,
	// Anthropic Messages: message_start's message and usage, message_delta's delta
	// and usage (whose token counts other than output_tokens the API may leave out,
	// as Message.Accumulate allows).
	"container": true, "diagnostics": true, "stop_details": true, "cache_creation": true,
	"inference_geo": true, "output_tokens_details": true, "server_tool_use": true,
	"service_tier": true, "speed": true, "cache_creation_input_tokens": true,
	"cache_read_input_tokens": true, "input_tokens": true,
}

// checkMissing fails for a required field absent from a fixture unless it is one of
// newerFields, and logs those.
func checkMissing(t *testing.T, fixture string, missing []string) {
	t.Helper()
	var newer []string
	slices.Sort(missing)
	for _, m := range slices.Compact(missing) {
		if newerFields[m[strings.LastIndex(m, ".")+1:]] {
			newer = append(newer, m)
			continue
		}
		t.Errorf("%s lacks %s, which the SDK says is always sent", fixture, m)
	}
	if len(newer) > 0 {
		t.Logf("%s lacks fields newer than its recording: %v", fixture, newer)
	}
}

// diff returns a readable difference of two values, or "" if they are equal.
func diff(name string, got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("%s: SDK %#v, kern %#v", name, got, want)
}

// check reports every non-empty difference.
func check(t *testing.T, diffs ...string) {
	t.Helper()
	for _, d := range diffs {
		if d != "" {
			t.Error(d)
		}
	}
}
