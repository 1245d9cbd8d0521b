package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// ErrUnsupported is wrapped by the error a provider returns, before it sends anything,
// for settings it cannot send or a combination of them its API refuses (a seed on
// Anthropic, a temperature with extended thinking).
var ErrUnsupported = errors.New("unsupported by the provider")

// ErrInvalidSettings is wrapped by the error of Settings.Validate for a value out of
// its range.
var ErrInvalidSettings = errors.New("invalid model settings")

// Settings tune how a model answers one request. The zero value leaves every choice to
// the provider: a field that is nil, zero or empty is not sent.
type Settings struct {
	// Temperature is the sampling temperature, 0 to 2 (Anthropic: 0 to 1).
	Temperature *float64 `json:"temperature,omitempty"`
	// TopP is the nucleus sampling mass, 0 to 1.
	TopP *float64 `json:"top_p,omitempty"`
	// MaxTokens bounds the tokens of one response (Responses max_output_tokens, Chat
	// max_completion_tokens, Anthropic max_tokens); 0 is the provider's default.
	MaxTokens int `json:"max_tokens,omitempty"`
	// Stop are sequences that end the response where they occur (Chat stop,
	// Anthropic stop_sequences; the Responses API has none).
	Stop []string `json:"stop,omitempty"`
	// Seed asks for deterministic sampling (Chat only).
	Seed *int64 `json:"seed,omitempty"`
	// ReasoningEffort is how hard a reasoning model thinks: one of ReasoningEfforts.
	// OpenAI sends it as is; Anthropic turns it into an extended thinking budget
	// ("none" turns thinking off).
	ReasoningEffort string `json:"reasoning_effort,omitempty"`
	// ParallelToolCalls, when set, allows or forbids several tool calls in one
	// response. It is sent only with tools.
	ParallelToolCalls *bool `json:"parallel_tool_calls,omitempty"`
	// ToolChoice says whether and which tool the model must call: ToolChoiceAuto,
	// ToolChoiceNone, ToolChoiceRequired, or the name of one of the request's tools.
	ToolChoice ToolChoice `json:"tool_choice,omitempty"`
	// Extra holds provider-specific fields added at the top level of the request
	// body as they are, for what Settings does not name. A field kern sets itself
	// cannot be replaced through Extra.
	Extra map[string]any `json:"extra,omitempty"`
}

// ToolChoice is a request's tool choice: a mode, or the name of the one tool the model
// must call.
type ToolChoice string

// Tool choice modes; any other value names a tool.
const (
	ToolChoiceAuto     ToolChoice = "auto"     // the model decides (the default)
	ToolChoiceNone     ToolChoice = "none"     // no tool calls
	ToolChoiceRequired ToolChoice = "required" // at least one tool call
)

// Mode reports whether c is a mode rather than a tool's name.
func (c ToolChoice) Mode() bool {
	return c == "" || c == ToolChoiceAuto || c == ToolChoiceNone || c == ToolChoiceRequired
}

// ReasoningEfforts are the values ReasoningEffort takes, from least to most.
var ReasoningEfforts = []string{"none", "minimal", "low", "medium", "high", "xhigh"}

// Float returns a pointer to f, for Settings' optional numbers.
func Float(f float64) *float64 { return &f }

// Int returns a pointer to i, for Settings.Seed.
func Int(i int64) *int64 { return &i }

// Bool returns a pointer to b, for Settings.ParallelToolCalls.
func Bool(b bool) *bool { return &b }

// IsZero reports whether s sets nothing.
func (s *Settings) IsZero() bool {
	return s.Temperature == nil && s.TopP == nil && s.MaxTokens == 0 && s.Stop == nil && s.Seed == nil &&
		s.ReasoningEffort == "" && s.ParallelToolCalls == nil && s.ToolChoice == "" && s.Extra == nil
}

// Merge returns s with every field that over sets replacing s's; Extra is merged key
// by key.
func (s Settings) Merge(over Settings) Settings {
	if over.Temperature != nil {
		s.Temperature = over.Temperature
	}
	if over.TopP != nil {
		s.TopP = over.TopP
	}
	if over.MaxTokens != 0 {
		s.MaxTokens = over.MaxTokens
	}
	if over.Stop != nil {
		s.Stop = over.Stop
	}
	if over.Seed != nil {
		s.Seed = over.Seed
	}
	if over.ReasoningEffort != "" {
		s.ReasoningEffort = over.ReasoningEffort
	}
	if over.ParallelToolCalls != nil {
		s.ParallelToolCalls = over.ParallelToolCalls
	}
	if over.ToolChoice != "" {
		s.ToolChoice = over.ToolChoice
	}
	if len(over.Extra) > 0 {
		extra := make(map[string]any, len(s.Extra)+len(over.Extra))
		for k, v := range s.Extra {
			extra[k] = v
		}
		for k, v := range over.Extra {
			extra[k] = v
		}
		s.Extra = extra
	}
	return s
}

// Validate reports the first setting out of the range every provider accepts. The
// error wraps ErrInvalidSettings and names the setting.
func (s *Settings) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSettings, fmt.Sprintf(format, args...))
	}
	if t := s.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		return bad("temperature %v is out of range [0, 2]", *t)
	}
	if p := s.TopP; p != nil && (math.IsNaN(*p) || *p < 0 || *p > 1) {
		return bad("top_p %v is out of range [0, 1]", *p)
	}
	if s.MaxTokens < 0 {
		return bad("max_tokens %d is negative", s.MaxTokens)
	}
	for i, stop := range s.Stop {
		if stop == "" {
			return bad("stop sequence %d is empty", i)
		}
	}
	if e := s.ReasoningEffort; e != "" && !slices.Contains(ReasoningEfforts, e) {
		return bad("reasoning_effort %q is not one of %s", e, strings.Join(ReasoningEfforts, ", "))
	}
	if c := s.ToolChoice; !c.Mode() && !validName(string(c)) {
		return bad("tool_choice %q is neither auto, none nor required, nor a tool name", c)
	}
	for k := range s.Extra {
		if k == "" {
			return bad("extra has an empty key")
		}
	}
	return nil
}

// CheckTools reports a tool choice the tools of a request cannot satisfy: a tool
// required, or a named one, when the request offers none or not that one.
func (s *Settings) CheckTools(tools []string) error {
	switch c := s.ToolChoice; {
	case c == ToolChoiceRequired && len(tools) == 0:
		return fmt.Errorf("%w: tool_choice required, but no tools are offered", ErrInvalidSettings)
	case !c.Mode() && !slices.Contains(tools, string(c)):
		return fmt.Errorf("%w: tool_choice names tool %q, which is not offered (tools: %s)", ErrInvalidSettings, c, strings.Join(tools, ", "))
	}
	return nil
}

// OutputSchema asks a model for an answer that is a JSON value matching a schema
// (OpenAI's structured outputs; a forced tool on Anthropic).
type OutputSchema struct {
	// Name names the schema: ^[a-zA-Z0-9_-]{1,64}$.
	Name        string
	Description string
	// Schema is the JSON Schema of the answer, an object schema.
	Schema json.RawMessage
	// Strict is set when the schema meets the rules of OpenAI's strict mode (every
	// object closed with additionalProperties false and all its properties
	// required): the provider is then asked to enforce it.
	Strict bool
}

// Checker is implemented by models that can tell, before any request, whether they
// can send a request: settings their API does not take, or refuses together. Agents
// call it before a run starts.
type Checker interface {
	Check(req *Request) error
}

// Check runs m's Checker on req, if m has one.
func Check(m Model, req *Request) error {
	if c, ok := m.(Checker); ok {
		return c.Check(req)
	}
	return nil
}

// validName reports whether name matches ^[a-zA-Z0-9_-]{1,64}$, what providers accept
// as a tool or schema name.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidName reports whether name is a valid tool or schema name:
// ^[a-zA-Z0-9_-]{1,64}$.
func ValidName(name string) bool { return validName(name) }

// MergeExtra returns body, a JSON object, with the fields of extra added. A field
// body already has is an error: it is set through Settings or by the provider.
func MergeExtra(body []byte, extra map[string]any) ([]byte, error) {
	if len(extra) == 0 {
		return body, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := fields[k]; ok {
			return nil, fmt.Errorf("%w: extra field %q is set by kern; use its setting instead", ErrInvalidSettings, k)
		}
		v, err := json.Marshal(extra[k])
		if err != nil {
			return nil, fmt.Errorf("%w: extra field %q: %w", ErrInvalidSettings, k, err)
		}
		fields[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
