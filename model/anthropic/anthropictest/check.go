package anthropictest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// thinkingDocs is where the API's thinking errors send the reader.
const thinkingDocs = "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

// checkSettings returns the API's complaint about the sampling, tool and thinking
// fields of a request, or "".
func checkSettings(p *Params, fields map[string]json.RawMessage) string {
	if fields["seed"] != nil {
		return "seed: Extra inputs are not permitted"
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"temperature", p.Temperature}, {"top_p", p.TopP}} {
		switch {
		case f.v == nil:
		case *f.v < 0:
			return f.name + ": Input should be greater than or equal to 0"
		case *f.v > 1:
			return f.name + ": Input should be less than or equal to 1"
		}
	}
	if p.TopK != nil && *p.TopK < 0 {
		return "top_k: Input should be greater than or equal to 0"
	}
	for i, s := range p.StopSequences {
		if s == "" {
			return fmt.Sprintf("stop_sequences.%d: stop sequences must not be empty", i)
		}
	}
	var names []string
	for i, t := range p.Tools {
		var schema struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(t.InputSchema, &schema) != nil || schema.Type != "object" {
			return fmt.Sprintf("tools.%d.custom.input_schema.type: Input should be 'object'", i)
		}
		names = append(names, t.Name)
	}
	if msg := checkToolChoice(p.ToolChoice, names); msg != "" {
		return msg
	}
	return checkThinking(p)
}

func checkToolChoice(c map[string]any, tools []string) string {
	if c == nil {
		return ""
	}
	if len(tools) == 0 {
		return "tool_choice: tool_choice may only be specified while providing tools."
	}
	switch c["type"] {
	case "auto", "any", "none":
	case "tool":
		name, _ := c["name"].(string)
		if !slices.Contains(tools, name) {
			return fmt.Sprintf("tool_choice.tool.name: Tool '%s' not found in the tools provided", name)
		}
	default:
		return fmt.Sprintf("tool_choice.type: Input tag '%v' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", c["type"])
	}
	if v, ok := c["disable_parallel_tool_use"]; ok {
		if _, isBool := v.(bool); !isBool || c["type"] == "none" {
			return "tool_choice.disable_parallel_tool_use: Extra inputs are not permitted"
		}
	}
	return ""
}

// checkThinking checks the rules of extended thinking.
func checkThinking(p *Params) string {
	t := p.Thinking
	if t == nil || t.Type != "enabled" {
		if t != nil && t.Type != "disabled" && t.Type != "adaptive" {
			return fmt.Sprintf("thinking.type: Input tag '%s' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'", t.Type)
		}
		return ""
	}
	switch {
	case t.BudgetTokens < 1024:
		return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
	case p.MaxTokens <= t.BudgetTokens:
		return "`max_tokens` must be greater than `thinking.budget_tokens`. " + thinkingDocs + "#max-tokens-and-context-window-size"
	case p.Temperature != nil && *p.Temperature != 1:
		return "`temperature` may only be set to 1 when thinking is enabled. " + thinkingDocs + "#feature-compatibility"
	case p.TopP != nil && *p.TopP < 0.95:
		return "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. " + thinkingDocs + "#feature-compatibility"
	case p.TopK != nil:
		return "`top_k` must be unset when thinking is enabled. " + thinkingDocs + "#feature-compatibility"
	case p.ToolChoice != nil && (p.ToolChoice["type"] == "any" || p.ToolChoice["type"] == "tool"):
		return "Thinking may not be enabled when `tool_choice` forces tool use."
	}
	last := -1
	for i, m := range p.Messages {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	m := p.Messages[last]
	for j, b := range m.Content {
		if (b.Type == "thinking") && b.Signature == "" {
			return fmt.Sprintf("messages.%d.content.%d.thinking.signature: Field required", last, j)
		}
	}
	hasToolUse := slices.ContainsFunc(m.Content, func(b Block) bool { return b.Type == "tool_use" })
	if hasToolUse && m.Content[0].Type != "thinking" && m.Content[0].Type != "redacted_thinking" {
		return fmt.Sprintf("messages.%d.content.0.type: Expected `thinking` or `redacted_thinking`, but found `%s`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. "+thinkingDocs, last, m.Content[0].Type)
	}
	return ""
}

// checkSource checks the source of an image or document block: base64 data of a
// media type the API takes (images: jpeg, png, gif, webp; documents: PDF), plain
// text for a document, or an http(s) URL.
func checkSource(b Block, at string) string {
	s := b.Source
	if s == nil {
		return at + ": Field required"
	}
	image := b.Type == "image"
	switch s.Type {
	case "base64":
		types := []string{"image/jpeg", "image/png", "image/gif", "image/webp"}
		if !image {
			types = []string{"application/pdf"}
		}
		if !slices.Contains(types, s.MediaType) {
			return fmt.Sprintf("%s.base64.media_type: Input should be %s", at, "'"+strings.Join(types, "', '")+"'")
		}
		if _, err := base64.StdEncoding.DecodeString(s.Data); err != nil || s.Data == "" {
			return fmt.Sprintf("%s.base64.data: The %s data is not valid base64", at, b.Type)
		}
	case "text":
		if image || s.MediaType != "text/plain" {
			return fmt.Sprintf("%s.type: Input tag 'text' found using 'type' does not match any of the expected tags", at)
		}
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return fmt.Sprintf("%s.url.url: Input should be a valid URL", at)
		}
	default:
		return fmt.Sprintf("%s.type: Input tag '%s' found using 'type' does not match any of the expected tags", at, s.Type)
	}
	return ""
}
