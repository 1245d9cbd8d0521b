package anthropic

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kern-dev/kern/model"
)

// Extended thinking budgets (budget_tokens) of the reasoning efforts; "none" turns
// thinking off. The API takes at least 1024.
var thinkingBudgets = map[string]int{
	"minimal": 1024,
	"low":     2048,
	"medium":  8192,
	"high":    16384,
	"xhigh":   32768,
}

// imageTypes are the MIME types of the images the Messages API takes.
var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// wireThinking is a request's thinking field.
type wireThinking struct {
	Type         string `json:"type"`
	BudgetTokens int    `json:"budget_tokens"`
}

// wireToolChoice is a request's tool_choice field.
type wireToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// Check reports, before any request, settings the Messages API does not take or
// refuses together: a seed; a temperature above 1; sampling parameters on API
// versions from 2026-10-21 on; with extended thinking (a reasoning effort other than
// "none"), a temperature, a top_p under 0.95, a tool choice that forces a tool, or a
// structured output (which forces a tool); max_tokens not above the thinking budget;
// and a tool choice the request's tools cannot satisfy.
func (m *Model) Check(req *model.Request) error {
	if req == nil {
		return nil
	}
	s := &req.Settings
	if err := s.Validate(); err != nil {
		return fmt.Errorf("anthropic: %w", err)
	}
	names := make([]string, len(req.Tools))
	for i, d := range req.Tools {
		names[i] = d.Name
	}
	if err := s.CheckTools(names); err != nil {
		return fmt.Errorf("anthropic: %w", err)
	}
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("anthropic: %w: %s", model.ErrUnsupported, fmt.Sprintf(format, args...))
	}
	if err := model.CheckAttachments(req); err != nil {
		return fmt.Errorf("anthropic: %w", err)
	}
	for _, msg := range req.Messages {
		for _, a := range msg.Attachments {
			switch {
			case a.Kind == model.AttachmentImage && a.URL == "" && !slices.Contains(imageTypes, a.MIMEType):
				return unsupported("images of MIME type %q (the Messages API takes %s)", a.MIMEType, strings.Join(imageTypes, ", "))
			case a.Kind == model.AttachmentFile && a.URL == "" && a.MIMEType != "application/pdf" && a.MIMEType != "text/plain":
				return unsupported("files of MIME type %q (the Messages API takes application/pdf and text/plain)", a.MIMEType)
			}
		}
	}
	switch {
	case s.Seed != nil:
		return unsupported("the Messages API takes no seed")
	case s.Temperature != nil && *s.Temperature > 1:
		return unsupported("the Messages API takes a temperature from 0 to 1, not %v", *s.Temperature)
	case m.bearer() && (s.Temperature != nil || s.TopP != nil):
		return unsupported("API version %s refuses temperature and top_p", m.version)
	}
	if o := req.Output; o != nil {
		switch {
		case !model.ValidName(o.Name):
			return fmt.Errorf("anthropic: %w: output schema name %q must match ^[a-zA-Z0-9_-]{1,64}$", model.ErrInvalidSettings, o.Name)
		case s.ToolChoice == model.ToolChoiceNone || !s.ToolChoice.Mode():
			return unsupported("a structured output is a forced tool call, which tool_choice %q forbids", s.ToolChoice)
		}
		for _, n := range names {
			if n == o.Name {
				return unsupported("the output schema's name %q is the name of a tool", o.Name)
			}
		}
	}
	budget := thinkingBudgets[s.ReasoningEffort]
	if budget == 0 {
		return nil
	}
	switch {
	case s.Temperature != nil:
		return unsupported("extended thinking (reasoning_effort %s) refuses a temperature", s.ReasoningEffort)
	case s.TopP != nil && *s.TopP < 0.95:
		return unsupported("extended thinking (reasoning_effort %s) takes top_p from 0.95 to 1, not %v", s.ReasoningEffort, *s.TopP)
	case s.ToolChoice == model.ToolChoiceRequired || !s.ToolChoice.Mode():
		return unsupported("extended thinking (reasoning_effort %s) refuses a tool choice that forces a tool (%s)", s.ReasoningEffort, s.ToolChoice)
	case req.Output != nil:
		return unsupported("extended thinking (reasoning_effort %s) refuses the forced tool call of a structured output", s.ReasoningEffort)
	case s.MaxTokens != 0 && s.MaxTokens <= budget:
		return unsupported("max_tokens %d must exceed the thinking budget of reasoning_effort %s (%d tokens)", s.MaxTokens, s.ReasoningEffort, budget)
	}
	return nil
}

// applySettings sets the fields of w that req's settings and output schema give.
func (m *Model) applySettings(w *wireRequest, req *model.Request) {
	s := &req.Settings
	if s.MaxTokens != 0 {
		w.MaxTokens = s.MaxTokens
	}
	if !m.bearer() && s.Temperature != nil {
		w.Temperature = s.Temperature
	}
	w.TopP = s.TopP
	w.StopSequences = s.Stop
	if budget := thinkingBudgets[s.ReasoningEffort]; budget > 0 {
		w.Thinking = &wireThinking{Type: "enabled", BudgetTokens: budget}
		if s.MaxTokens == 0 {
			w.MaxTokens = budget + m.maxTokens // room for the answer after the thinking
		}
	}
	choice := wireToolChoice{}
	switch c := s.ToolChoice; c {
	case "":
	case model.ToolChoiceAuto, model.ToolChoiceNone:
		choice.Type = string(c)
	case model.ToolChoiceRequired:
		choice.Type = "any"
	default:
		choice.Type, choice.Name = "tool", string(c)
	}
	if o := req.Output; o != nil {
		w.Tools = append(w.Tools, wireTool{Name: o.Name, Description: o.Description, InputSchema: o.Schema})
		if len(req.Tools) == 0 {
			choice.Type, choice.Name = "tool", o.Name
		} else if choice.Type == "" || choice.Type == "auto" {
			choice.Type = "any" // a tool each turn: the agent's, or the answer
		}
	}
	if p := s.ParallelToolCalls; p != nil && !*p && len(w.Tools) > 0 && choice.Type != "none" {
		if choice.Type == "" {
			choice.Type = "auto"
		}
		choice.DisableParallelToolUse = true
	}
	if choice.Type != "" && len(w.Tools) > 0 {
		w.ToolChoice = &choice
	}
}
