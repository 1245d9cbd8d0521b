package openaitest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// This file checks request bodies as the API does for the fields kern and the SDKs
// send, answering what the API answers: a 400 invalid_request_error naming the
// parameter. The messages follow the API's published error texts; where the
// exact text is not published, they keep its shape ("Invalid 'x': ...").

// invalid is a refused request: the parameter, the error code and the message.
type invalid struct {
	param, code, msg string
}

// reply returns the API's 400 for the refusal.
func (e *invalid) reply() Reply {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": e.msg, "type": "invalid_request_error", "param": e.param, "code": e.code}})
	return Body(http.StatusBadRequest, "application/json; charset=utf-8", string(b)+"\n")
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// efforts are the values of reasoning.effort and reasoning_effort.
var efforts = []string{"none", "minimal", "low", "medium", "high", "xhigh"}

// check validates the body of a request to path, or returns nil.
func check(path string, body map[string]any) *invalid {
	chat := strings.HasSuffix(path, "/chat/completions")
	if e := number(body, "temperature", 0, 2); e != nil {
		return e
	}
	if e := number(body, "top_p", 0, 1); e != nil {
		return e
	}
	tools := toolNames(body, chat)
	if e := toolChoice(body, tools, chat); e != nil {
		return e
	}
	if v, ok := body["parallel_tool_calls"]; ok {
		if _, isBool := v.(bool); !isBool {
			return typeError("parallel_tool_calls", "a boolean", v)
		}
		if chat && len(tools) == 0 {
			return &invalid{"parallel_tool_calls", "invalid_value", "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified."}
		}
	}
	if e := strictTools(body, chat); e != nil {
		return e
	}
	if e := contentParts(body, chat); e != nil {
		return e
	}
	if chat {
		return checkChat(body)
	}
	return checkResponses(body)
}

func checkResponses(body map[string]any) *invalid {
	for _, p := range []string{"stop", "seed", "max_tokens", "max_completion_tokens", "response_format", "reasoning_effort"} {
		if _, ok := body[p]; ok {
			return &invalid{p, "unknown_parameter", fmt.Sprintf("Unknown parameter: '%s'.", p)}
		}
	}
	if e := integer(body, "max_output_tokens", 16); e != nil {
		return e
	}
	if e := checkInclude(body); e != nil {
		return e
	}
	if e := reasoningItems(body); e != nil {
		return e
	}
	if r, ok := body["reasoning"].(map[string]any); ok {
		if e := enum(r, "reasoning.effort", "effort", efforts); e != nil {
			return e
		}
		if e := enum(r, "reasoning.summary", "summary", []string{"auto", "concise", "detailed"}); e != nil {
			return e
		}
	}
	text, _ := body["text"].(map[string]any)
	format, _ := text["format"].(map[string]any)
	if format == nil {
		return nil
	}
	return schemaFormat(format, "text.format")
}

func checkChat(body map[string]any) *invalid {
	if e := integer(body, "max_completion_tokens", 1); e != nil {
		return e
	}
	if e := integer(body, "seed", math.MinInt64); e != nil {
		return e
	}
	switch s := body["stop"].(type) {
	case nil, string:
	case []any:
		if len(s) > 4 {
			return &invalid{"stop", "array_above_max_length", fmt.Sprintf("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length %d instead.", len(s))}
		}
	default:
		return typeError("stop", "a string or an array of strings", s)
	}
	if e := enum(body, "reasoning_effort", "reasoning_effort", efforts); e != nil {
		return e
	}
	rf, ok := body["response_format"].(map[string]any)
	if !ok {
		return nil
	}
	if rf["type"] != "json_schema" {
		return nil
	}
	js, _ := rf["json_schema"].(map[string]any)
	if js == nil {
		return &invalid{"response_format.json_schema", "missing_required_parameter", "Missing required parameter: 'response_format.json_schema'."}
	}
	js = maps.Clone(js) // the recorded body stays as sent
	js["type"] = "json_schema"
	return schemaFormat(js, "response_format.json_schema")
}

// schemaFormat checks a json_schema format (Responses' text.format, Chat's
// response_format.json_schema): a valid name, an object schema, and with strict the
// rules of strict mode.
func schemaFormat(f map[string]any, param string) *invalid {
	if f["type"] != "json_schema" {
		return nil
	}
	name, _ := f["name"].(string)
	if !namePattern.MatchString(name) {
		return &invalid{param + ".name", "invalid_value", fmt.Sprintf("Invalid '%s.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", param)}
	}
	schema, ok := f["schema"].(map[string]any)
	if !ok {
		return &invalid{param + ".schema", "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s.schema'.", param)}
	}
	if strict, _ := f["strict"].(bool); strict {
		if msg := strictSchema(schema, "()"); msg != "" {
			return &invalid{param + ".schema", "invalid_json_schema", fmt.Sprintf("Invalid schema for response_format '%s': %s", name, msg)}
		}
	}
	return nil
}

// strictSchema returns what breaks the rules of strict mode in schema, or "": the root
// is an object, and every object has additionalProperties false and lists all its
// properties in required.
func strictSchema(schema map[string]any, ctx string) string {
	if ctx == "()" && schema["type"] != "object" {
		return "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"" + fmt.Sprint(schema["type"]) + "\"'."
	}
	props, hasProps := schema["properties"].(map[string]any)
	if hasProps || isType(schema["type"], "object") {
		if ap, ok := schema["additionalProperties"].(bool); !ok || ap {
			return fmt.Sprintf("In context=%s, 'additionalProperties' is required to be supplied and to be false.", ctx)
		}
		req, _ := schema["required"].([]any)
		var missing []string
		for k := range props {
			if !slices.Contains(req, any(k)) {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Sprintf("In context=%s, 'required' is required to be supplied and to be an array including every key in properties. Missing '%s'.", ctx, missing[0])
		}
	}
	for _, k := range slices.Sorted(mapKeys(props)) {
		if sub, ok := props[k].(map[string]any); ok {
			if msg := strictSchema(sub, fmt.Sprintf("('properties', '%s')", k)); msg != "" {
				return msg
			}
		}
	}
	for _, k := range []string{"items", "$defs", "definitions"} {
		switch sub := schema[k].(type) {
		case map[string]any:
			if k == "items" {
				if msg := strictSchema(sub, ctx+"/items"); msg != "" {
					return msg
				}
				continue
			}
			for name, d := range sub {
				if ds, ok := d.(map[string]any); ok {
					if msg := strictSchema(ds, fmt.Sprintf("('%s', '%s')", k, name)); msg != "" {
						return msg
					}
				}
			}
		}
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf"} {
		arr, _ := schema[k].([]any)
		for i, a := range arr {
			if sub, ok := a.(map[string]any); ok {
				if msg := strictSchema(sub, fmt.Sprintf("%s/%s/%d", ctx, k, i)); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func isType(t any, name string) bool {
	switch t := t.(type) {
	case string:
		return t == name
	case []any:
		return slices.Contains(t, any(name))
	}
	return false
}

// toolNames returns the names of the function tools of a request.
func toolNames(body map[string]any, chat bool) []string {
	tools, _ := body["tools"].([]any)
	var names []string
	for _, t := range tools {
		m, _ := t.(map[string]any)
		if chat {
			m, _ = m["function"].(map[string]any)
		}
		if name, ok := m["name"].(string); ok {
			names = append(names, name)
		}
	}
	return names
}

// strictTools checks the parameters of the function tools sent with strict true.
func strictTools(body map[string]any, chat bool) *invalid {
	tools, _ := body["tools"].([]any)
	for i, t := range tools {
		m, _ := t.(map[string]any)
		param := fmt.Sprintf("tools[%d]", i)
		if chat {
			m, _ = m["function"].(map[string]any)
			param += ".function"
		}
		if strict, _ := m["strict"].(bool); !strict {
			continue
		}
		params, _ := m["parameters"].(map[string]any)
		if msg := strictSchema(params, "()"); msg != "" {
			return &invalid{param + ".parameters", "invalid_function_parameters", fmt.Sprintf("Invalid schema for function '%v': %s", m["name"], msg)}
		}
	}
	return nil
}

// toolChoice checks tool_choice against the tools offered.
func toolChoice(body map[string]any, tools []string, chat bool) *invalid {
	v, ok := body["tool_choice"]
	if !ok {
		return nil
	}
	switch c := v.(type) {
	case string:
		if !slices.Contains([]string{"none", "auto", "required"}, c) {
			return &invalid{"tool_choice", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", c)}
		}
		if c == "required" && len(tools) == 0 {
			return &invalid{"tool_choice", "invalid_value", "Tool choice 'required' must be specified with 'tools' parameter."}
		}
		return nil
	case map[string]any:
		name, _ := c["name"].(string)
		if chat {
			f, _ := c["function"].(map[string]any)
			name, _ = f["name"].(string)
		}
		if c["type"] != "function" || name == "" {
			return &invalid{"tool_choice", "invalid_value", "Invalid value for 'tool_choice': expected an object with type 'function' and a function name."}
		}
		if !slices.Contains(tools, name) {
			return &invalid{"tool_choice", "invalid_value", fmt.Sprintf("Tool choice '%s' not found in 'tools' parameter.", name)}
		}
		return nil
	}
	return typeError("tool_choice", "a string or an object", v)
}

// number checks that body[key], if present, is a number in [lo, hi].
func number(body map[string]any, key string, lo, hi float64) *invalid {
	v, ok := body[key]
	if !ok || v == nil {
		return nil
	}
	f, isNum := v.(float64)
	switch {
	case !isNum:
		return typeError(key, "a number", v)
	case f < lo:
		return &invalid{key, "decimal_below_min_value", fmt.Sprintf("Invalid '%s': decimal below minimum value. Expected a value >= %v, but got %v instead.", key, lo, f)}
	case f > hi:
		return &invalid{key, "decimal_above_max_value", fmt.Sprintf("Invalid '%s': decimal above maximum value. Expected a value <= %v, but got %v instead.", key, hi, f)}
	}
	return nil
}

// integer checks that body[key], if present, is an integer of at least lo.
func integer(body map[string]any, key string, lo float64) *invalid {
	v, ok := body[key]
	if !ok || v == nil {
		return nil
	}
	f, isNum := v.(float64)
	switch {
	case !isNum || f != math.Trunc(f):
		return typeError(key, "an integer", v)
	case f < lo:
		return &invalid{key, "integer_below_min_value", fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= %v, but got %v instead.", key, lo, f)}
	}
	return nil
}

// enum checks that m[key], if present, is one of values; param names it in errors.
func enum(m map[string]any, param, key string, values []string) *invalid {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	if s, _ := v.(string); !slices.Contains(values, s) {
		return &invalid{param, "invalid_value", fmt.Sprintf("Invalid value: '%v'. Supported values are: '%s'.", v, strings.Join(values, "', '"))}
	}
	return nil
}

func typeError(param, want string, got any) *invalid {
	return &invalid{param, "invalid_type", fmt.Sprintf("Invalid type for '%s': expected %s, but got %T instead.", param, want, got)}
}

// imageDetails are the values of an input_image's detail.
var imageDetails = []string{"low", "high", "auto", "original"}

// contentParts checks the content parts of user messages: Responses input_text,
// input_image (with its detail, and a URL or a data: URL of an image) and input_file
// (a file id, URL or data, with a filename for data); Chat text, image_url and file
// (data or a file id, with a filename for data).
func contentParts(body map[string]any, chat bool) *invalid {
	key := "input"
	if chat {
		key = "messages"
	}
	items, _ := body[key].([]any)
	for i, it := range items {
		m, _ := it.(map[string]any)
		parts, ok := m["content"].([]any)
		if !ok || m["role"] != "user" {
			continue
		}
		for j, p := range parts {
			part, _ := p.(map[string]any)
			param := fmt.Sprintf("%s[%d].content[%d]", key, i, j)
			if e := contentPart(part, param, chat); e != nil {
				return e
			}
		}
	}
	return nil
}

func contentPart(part map[string]any, param string, chat bool) *invalid {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	missing := func(p string) *invalid {
		return &invalid{p, "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s'.", p)}
	}
	imageURL := func(u, p string) *invalid {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || (strings.HasPrefix(u, "data:image/") && strings.Contains(u, ";base64,")) {
			return nil
		}
		return &invalid{p, "invalid_value", fmt.Sprintf("Invalid '%s': Expected a valid URL, but got a value with an invalid format.", p)}
	}
	fileData := func(f map[string]any, p string) *invalid {
		if str(f, "file_data") != "" && str(f, "filename") == "" {
			return missing(p + ".filename")
		}
		if str(f, "file_data") == "" && str(f, "file_id") == "" && (chat || str(f, "file_url") == "") {
			return missing(p + ".file_data")
		}
		return nil
	}
	switch t := str(part, "type"); {
	case !chat && t == "input_text", chat && t == "text":
		if _, ok := part["text"].(string); !ok {
			return missing(param + ".text")
		}
	case !chat && t == "input_image":
		if e := enum(part, param+".detail", "detail", imageDetails); e != nil {
			return e
		}
		if str(part, "detail") == "" {
			return missing(param + ".detail")
		}
		if str(part, "file_id") != "" {
			return nil
		}
		return imageURL(str(part, "image_url"), param+".image_url")
	case chat && t == "image_url":
		img, _ := part["image_url"].(map[string]any)
		return imageURL(str(img, "url"), param+".image_url.url")
	case !chat && t == "input_file":
		return fileData(part, param)
	case chat && t == "file":
		f, _ := part["file"].(map[string]any)
		return fileData(f, param+".file")
	case chat && t == "input_audio":
	default:
		return &invalid{param + ".type", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", t,
			map[bool]string{false: "'input_text', 'input_image', and 'input_file'", true: "'text', 'image_url', 'input_audio', and 'file'"}[chat])}
	}
	return nil
}

// includeEncrypted is the include value that asks for reasoning items' encrypted
// content.
const includeEncrypted = "reasoning.encrypted_content"

// includeValues are the values of a Responses request's include.
var includeValues = []string{"code_interpreter_call.outputs", "computer_call_output.output.image_url",
	"file_search_call.results", "message.input_image.image_url", "message.output_text.logprobs",
	includeEncrypted, "web_search_call.action.sources", "web_search_call.results"}

func checkInclude(body map[string]any) *invalid {
	v, ok := body["include"]
	if !ok || v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return typeError("include", "an array", v)
	}
	for i, x := range list {
		if s, _ := x.(string); !slices.Contains(includeValues, s) {
			return &invalid{fmt.Sprintf("include[%d]", i), "invalid_value",
				fmt.Sprintf("Invalid value: '%v'. Supported values are: %s.", x, quotedList(includeValues))}
		}
	}
	return nil
}

func quotedList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, ", ")
}

// reasoningItems checks the reasoning items of a Responses request's input as the
// API does: with "store": false nothing is kept on the server, so an item must
// bring its encrypted content, and it must be content this server gave out; and
// each must be followed by the item that followed it in the output.
func reasoningItems(body map[string]any) *invalid {
	input, _ := body["input"].([]any)
	stored := body["store"] != false // the API stores responses unless told not to
	for i, x := range input {
		item, _ := x.(map[string]any)
		if item["type"] != "reasoning" {
			continue
		}
		param := fmt.Sprintf("input[%d]", i)
		id, _ := item["id"].(string)
		if id == "" {
			return &invalid{param + ".id", "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s.id'.", param)}
		}
		enc, _ := item["encrypted_content"].(string)
		switch {
		case enc == "" && !stored:
			return &invalid{"input", "invalid_value", fmt.Sprintf("Item with id '%s' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input.", id)}
		case enc != "" && enc != EncryptedContent(id):
			return &invalid{param + ".encrypted_content", "invalid_encrypted_content", fmt.Sprintf("The encrypted content for item %s could not be verified.", id)}
		}
		if i+1 == len(input) {
			return &invalid{"input", "invalid_value", fmt.Sprintf("Item '%s' of type 'reasoning' was provided without its required following item.", id)}
		}
	}
	return nil
}
