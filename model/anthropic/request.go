package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/tool"
)

// wireRequest is the body of POST /v1/messages, with the fields kern sends.
type wireRequest struct {
	Model       string        `json:"model"`
	MaxTokens   int           `json:"max_tokens"`
	Stream      bool          `json:"stream"`
	System      string        `json:"system,omitempty"`
	Messages    []wireMessage `json:"messages"`
	Tools       []wireTool    `json:"tools,omitempty"`
	Temperature *float64      `json:"temperature,omitempty"`

	TopP          *float64        `json:"top_p,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Thinking      *wireThinking   `json:"thinking,omitempty"`
	ToolChoice    *wireToolChoice `json:"tool_choice,omitempty"`
}

// wireMessage is one message of a request; its content is always an array of blocks.
type wireMessage struct {
	Role    string      `json:"role"`
	Content []wireBlock `json:"content"`
}

// wireBlock is a content block of a request: text, tool_use or tool_result. Fields a
// block's type does not have are empty and left out.
type wireBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   string          `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
	// Thinking and Signature are a thinking block's; Data a redacted_thinking
	// block's.
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
	// Source is an image's or a document's.
	Source *wireSource `json:"source,omitempty"`
}

// wireSource is where an image or a document comes from: base64 bytes, plain text,
// or a URL.
type wireSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// wireTool is a tool a request offers.
type wireTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// emptyObject is the tool input sent for a call whose arguments are not a JSON object.
var emptyObject = json.RawMessage(`{}`)

// encode returns the JSON body of the request for req.
//
// The conversation is mapped onto the API's alternating user and assistant messages:
// a tool message becomes a tool_result block of a user message; consecutive messages
// of one role (several tool results, or tool results and the user's next words) are
// merged into one message, with the tool results first, as the API requires. An
// assistant's tool call whose arguments are not a JSON object is sent with the input
// {} (the API refuses anything else with a 400, which would end the run). Messages
// without content are left out, since the API refuses empty text blocks.
func (m *Model) encode(req *model.Request) ([]byte, error) {
	w := wireRequest{
		Model:     m.model,
		MaxTokens: m.maxTokens,
		Stream:    true,
		System:    req.Instructions,
		Messages:  make([]wireMessage, 0, len(req.Messages)),
		Tools:     tools(req.Tools),
	}
	if !m.bearer() {
		w.Temperature = m.temperature
	}
	m.applySettings(&w, req)
	for i := range req.Messages {
		msg := &req.Messages[i]
		role, blocks, err := convert(msg)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if len(blocks) == 0 {
			continue
		}
		n := len(w.Messages)
		if n == 0 || w.Messages[n-1].Role != role {
			w.Messages = append(w.Messages, wireMessage{Role: role, Content: blocks})
			continue
		}
		last := &w.Messages[n-1]
		for _, b := range blocks {
			last.Content = insertBlock(last.Content, b)
		}
	}
	body, err := json.Marshal(&w)
	if err != nil {
		return nil, err
	}
	return model.MergeExtra(body, req.Settings.Extra)
}

// convert returns the API role and content blocks of one message.
func convert(msg *model.Message) (string, []wireBlock, error) {
	switch msg.Role {
	case model.RoleUser:
		blocks := make([]wireBlock, 0, 1+len(msg.Attachments))
		if msg.Content != "" {
			blocks = append(blocks, wireBlock{Type: "text", Text: msg.Content})
		}
		for i := range msg.Attachments {
			blocks = append(blocks, attachmentBlock(&msg.Attachments[i]))
		}
		return "user", blocks, nil
	case model.RoleAssistant:
		blocks := make([]wireBlock, 0, len(msg.Thinking)+1+len(msg.ToolCalls))
		for _, t := range msg.Thinking {
			if t.Item != nil {
				continue // another provider's reasoning
			}
			if t.Redacted != "" {
				blocks = append(blocks, wireBlock{Type: "redacted_thinking", Data: t.Redacted})
				continue
			}
			blocks = append(blocks, wireBlock{Type: "thinking", Thinking: t.Text, Signature: t.Signature})
		}
		if msg.Content != "" {
			blocks = append(blocks, wireBlock{Type: "text", Text: msg.Content})
		}
		for _, c := range msg.ToolCalls {
			blocks = append(blocks, wireBlock{Type: "tool_use", ID: c.ID, Name: c.Name, Input: toolInput(c.Arguments)})
		}
		return "assistant", blocks, nil
	case model.RoleTool:
		return "user", []wireBlock{{Type: "tool_result", ToolUseID: msg.ToolCallID, Content: msg.Content, IsError: msg.IsError}}, nil
	}
	return "", nil, fmt.Errorf("unknown role %q", msg.Role)
}

// insertBlock adds b to the content of a message: a tool_result after the tool
// results already there and before any other block, anything else at the end.
func insertBlock(content []wireBlock, b wireBlock) []wireBlock {
	if b.Type != "tool_result" {
		return append(content, b)
	}
	i := 0
	for i < len(content) && content[i].Type == "tool_result" {
		i++
	}
	content = append(content, wireBlock{})
	copy(content[i+1:], content[i:])
	content[i] = b
	return content
}

// toolInput returns the arguments of a tool call as the input of a tool_use block:
// themselves if they are a JSON object, else {}.
func toolInput(args json.RawMessage) json.RawMessage {
	b := bytes.TrimSpace(args)
	if len(b) > 0 && b[0] == '{' && json.Valid(b) {
		return b
	}
	return emptyObject
}

// tools returns the tools of a request; a tool without parameters takes an empty
// object.
func tools(defs []tool.Definition) []wireTool {
	if len(defs) == 0 {
		return nil
	}
	out := make([]wireTool, len(defs))
	for i, d := range defs {
		schema := d.Parameters
		if len(bytes.TrimSpace(schema)) == 0 {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out[i] = wireTool{Name: d.Name, Description: d.Description, InputSchema: schema}
	}
	return out
}

// attachmentBlock returns the image or document block of an attachment that Check
// accepted.
func attachmentBlock(a *model.Attachment) wireBlock {
	typ := "document"
	if a.Kind == model.AttachmentImage {
		typ = "image"
	}
	switch {
	case a.URL != "":
		return wireBlock{Type: typ, Source: &wireSource{Type: "url", URL: a.URL}}
	case a.MIMEType == "text/plain":
		return wireBlock{Type: typ, Source: &wireSource{Type: "text", MediaType: a.MIMEType, Data: string(a.Data)}}
	}
	return wireBlock{Type: typ, Source: &wireSource{Type: "base64", MediaType: a.MIMEType, Data: a.Base64()}}
}
