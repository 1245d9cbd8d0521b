package openai

import (
	"encoding/json"
	"fmt"

	"github.com/kern-dev/kern/model"
)

// minOutputTokens is the least max_output_tokens the Responses API accepts.
const minOutputTokens = 16

// maxStop is the most stop sequences Chat Completions accepts.
const maxStop = 4

// check returns why req cannot be sent to the API (chat: Chat Completions, else
// Responses), or nil. The errors wrap model.ErrInvalidSettings or
// model.ErrUnsupported.
func check(req *model.Request, chat bool) error {
	if req == nil {
		return nil
	}
	s := &req.Settings
	if err := s.Validate(); err != nil {
		return fmt.Errorf("openai: %w", err)
	}
	names := make([]string, len(req.Tools))
	for i, d := range req.Tools {
		names[i] = d.Name
	}
	if err := s.CheckTools(names); err != nil {
		return fmt.Errorf("openai: %w", err)
	}
	if err := model.CheckAttachments(req); err != nil {
		return fmt.Errorf("openai: %w", err)
	}
	if chat {
		for _, m := range req.Messages {
			for _, a := range m.Attachments {
				if a.Kind == model.AttachmentFile && a.URL != "" {
					return fmt.Errorf("openai: %w: Chat Completions takes files as data, not by URL (%s); the Responses API takes URLs", model.ErrUnsupported, a.URL)
				}
			}
		}
	}
	if o := req.Output; o != nil && !model.ValidName(o.Name) {
		return fmt.Errorf("openai: %w: output schema name %q must match ^[a-zA-Z0-9_-]{1,64}$", model.ErrInvalidSettings, o.Name)
	}
	if chat {
		if len(s.Stop) > maxStop {
			return fmt.Errorf("openai: %w: Chat Completions takes at most %d stop sequences, not %d", model.ErrUnsupported, maxStop, len(s.Stop))
		}
		return nil
	}
	switch {
	case len(s.Stop) > 0:
		return fmt.Errorf("openai: %w: the Responses API has no stop sequences (Chat Completions has)", model.ErrUnsupported)
	case s.Seed != nil:
		return fmt.Errorf("openai: %w: the Responses API takes no seed (Chat Completions does)", model.ErrUnsupported)
	case s.MaxTokens != 0 && s.MaxTokens < minOutputTokens:
		return fmt.Errorf("openai: %w: the Responses API takes max_output_tokens of at least %d, not %d", model.ErrUnsupported, minOutputTokens, s.MaxTokens)
	}
	return nil
}

// toolChoice returns the wire form of a tool choice: a mode as a string, a named
// tool as Responses' flat object or Chat's nested one; nil when unset.
func toolChoice(c model.ToolChoice, chat bool) any {
	switch {
	case c == "":
		return nil
	case c.Mode():
		return string(c)
	case chat:
		return map[string]any{"type": "function", "function": map[string]string{"name": string(c)}}
	}
	return map[string]string{"type": "function", "name": string(c)}
}

// parallel returns the parallel_tool_calls to send: only with tools, which the API
// requires.
func parallel(s *model.Settings, tools int) *bool {
	if tools == 0 {
		return nil
	}
	return s.ParallelToolCalls
}

// jsonSchemaFormat is a json_schema format: Responses' text.format (flat, with type)
// and Chat's response_format.json_schema.
type jsonSchemaFormat struct {
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      bool            `json:"strict"`
}

func schemaFormat(o *model.OutputSchema) jsonSchemaFormat {
	return jsonSchemaFormat{Name: o.Name, Description: o.Description, Schema: o.Schema, Strict: o.Strict}
}

// encode marshals body and adds the request's extra fields.
func encode(body any, req *model.Request) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil || req == nil {
		return b, err
	}
	if b, err = model.MergeExtra(b, req.Settings.Extra); err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	return b, nil
}

// responsesParts returns the content parts of a user message with attachments, for
// the Responses API: input_text, then an input_image or input_file per attachment.
func responsesParts(m *model.Message) []any {
	parts := make([]any, 0, 1+len(m.Attachments))
	if m.Content != "" {
		parts = append(parts, map[string]string{"type": "input_text", "text": m.Content})
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		switch {
		case a.Kind == model.AttachmentImage:
			u := a.URL
			if u == "" {
				u = a.DataURL()
			}
			parts = append(parts, map[string]string{"type": "input_image", "detail": "auto", "image_url": u})
		case a.URL != "":
			parts = append(parts, map[string]string{"type": "input_file", "file_url": a.URL})
		default:
			parts = append(parts, map[string]string{"type": "input_file", "filename": filename(a), "file_data": a.DataURL()})
		}
	}
	return parts
}

// chatParts returns the content parts of a user message with attachments, for Chat
// Completions: text, then an image_url or file per attachment.
func chatParts(m *model.Message) []any {
	parts := make([]any, 0, 1+len(m.Attachments))
	if m.Content != "" {
		parts = append(parts, map[string]string{"type": "text", "text": m.Content})
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		if a.Kind == model.AttachmentImage {
			u := a.URL
			if u == "" {
				u = a.DataURL()
			}
			parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": u}})
			continue
		}
		parts = append(parts, map[string]any{"type": "file", "file": map[string]string{"filename": filename(a), "file_data": a.DataURL()}})
	}
	return parts
}

// filename is the name a file sent as data goes by.
func filename(a *model.Attachment) string {
	if a.Filename != "" {
		return a.Filename
	}
	return "file"
}
