package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/internal/sse"
)

// Chat is a model served by the Chat Completions API (POST {base}/chat/completions),
// the API every OpenAI-compatible server implements. A Chat is safe for concurrent
// use.
type Chat struct {
	cfg *config
}

// NewChat returns the model named model (such as "gpt-4.1-mini", or "llama3.2" on
// Ollama) of the Chat Completions API. The environment variables OPENAI_BASE_URL and
// OPENAI_API_KEY are read now; opts override them.
func NewChat(model string, opts ...Option) *Chat {
	return &Chat{cfg: newConfig(model, opts)}
}

// Provider returns "openai".
func (c *Chat) Provider() string { return Provider }

// ModelID returns the model's name as given to NewChat.
func (c *Chat) ModelID() string { return c.cfg.model }

// Stream sends req and streams the answer: a chunk per text delta, then a last chunk
// with the tool calls (assembled from their deltas), the usage and the finish reason.
// It accepts the quirks of local servers: tool calls with a finish reason of "stop",
// content in the finish chunk, usage in a chunk without choices, tool calls without
// ids (given "call_<turn>_<index>"). An error object inside the stream ends it with an
// error; a stream cut before both its finish chunk and "data: [DONE]" ends with
// model.ErrStreamCut. When ctx is cancelled, Stream closes the connection and yields
// ctx's error.
func (c *Chat) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		if err := check(req, true); err != nil {
			yield(model.Chunk{}, err)
			return
		}
		body, err := encode(c.request(req), req)
		if err != nil {
			yield(model.Chunk{}, fmt.Errorf("openai: encode request: %w", err))
			return
		}
		resp, err := c.cfg.open(ctx, "/chat/completions", body)
		if err != nil {
			yield(model.Chunk{}, err)
			return
		}
		defer resp.Body.Close()
		s := chatStream{header: resp.Header, yield: yield, turn: assistantTurns(req)}
		rd := sse.NewReader(resp.Body)
		for {
			ev, err := rd.Next()
			if err == io.EOF && s.finished {
				s.finish() // the server closed after its finish chunk without [DONE]
				return
			}
			if err != nil {
				yield(model.Chunk{}, readError(ctx, err))
				return
			}
			if !s.event(ev.Data) {
				return
			}
		}
	}
}

// Check reports, before any request, settings Chat Completions does not take (more
// than 4 stop sequences) and a tool choice the request's tools cannot satisfy.
func (c *Chat) Check(req *model.Request) error {
	if err := check(req, true); err != nil || req == nil || len(req.Settings.Extra) == 0 {
		return err
	}
	_, err := encode(c.request(req), req)
	return err
}

// Wire shapes of a Chat Completions request (PROTOCOLS.md §2.1).
type (
	chatRequest struct {
		Model               string              `json:"model"`
		Messages            []chatMessage       `json:"messages"`
		Tools               []chatTool          `json:"tools,omitempty"`
		ToolChoice          any                 `json:"tool_choice,omitempty"`
		ParallelToolCalls   *bool               `json:"parallel_tool_calls,omitempty"`
		Temperature         *float64            `json:"temperature,omitempty"`
		TopP                *float64            `json:"top_p,omitempty"`
		MaxCompletionTokens int                 `json:"max_completion_tokens,omitempty"`
		Stop                []string            `json:"stop,omitempty"`
		Seed                *int64              `json:"seed,omitempty"`
		ReasoningEffort     string              `json:"reasoning_effort,omitempty"`
		ResponseFormat      *chatResponseFormat `json:"response_format,omitempty"`
		Stream              bool                `json:"stream"`
		StreamOptions       struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	chatResponseFormat struct {
		Type       string           `json:"type"`
		JSONSchema jsonSchemaFormat `json:"json_schema"`
	}
	chatMessage struct {
		Role       string         `json:"role"`
		Content    any            `json:"content"` // null for an assistant message of only tool calls; parts with attachments
		ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
		ToolCallID string         `json:"tool_call_id,omitempty"`
	}
	chatToolCall struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	chatTool struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      bool            `json:"strict"`
		} `json:"function"`
	}
)

// request builds the request body for req.
func (c *Chat) request(req *model.Request) *chatRequest {
	out := &chatRequest{Model: c.cfg.model, Stream: true, Messages: []chatMessage{}}
	out.StreamOptions.IncludeUsage = true
	if req == nil {
		return out
	}
	if req.Instructions != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: &req.Instructions})
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		msg := chatMessage{Role: string(m.Role), Content: m.Content, ToolCallID: m.ToolCallID}
		if len(m.Attachments) > 0 {
			msg.Content = chatParts(m)
		}
		if m.Role == model.RoleAssistant && len(m.ToolCalls) > 0 {
			if m.Content == "" {
				msg.Content = nil
			}
			for _, tc := range m.ToolCalls {
				call := chatToolCall{ID: tc.ID, Type: "function"}
				call.Function.Name, call.Function.Arguments = tc.Name, string(arguments(string(tc.Arguments)))
				msg.ToolCalls = append(msg.ToolCalls, call)
			}
		}
		out.Messages = append(out.Messages, msg)
	}
	for _, d := range req.Tools {
		t := chatTool{Type: "function"}
		t.Function.Name, t.Function.Description, t.Function.Parameters = d.Name, d.Description, d.Parameters
		if len(t.Function.Parameters) == 0 {
			t.Function.Parameters = emptySchema
		}
		// strict is false for the reason given in Responses.request.
		out.Tools = append(out.Tools, t)
	}
	s := &req.Settings
	out.ToolChoice = toolChoice(s.ToolChoice, true)
	out.ParallelToolCalls = parallel(s, len(req.Tools))
	out.Temperature, out.TopP, out.MaxCompletionTokens = s.Temperature, s.TopP, s.MaxTokens
	out.Stop, out.Seed, out.ReasoningEffort = s.Stop, s.Seed, s.ReasoningEffort
	if o := req.Output; o != nil {
		out.ResponseFormat = &chatResponseFormat{Type: "json_schema", JSONSchema: schemaFormat(o)}
	}
	return out
}

// chatStream turns the chunks of one Chat Completions stream into model chunks.
type chatStream struct {
	header   http.Header
	yield    func(model.Chunk, error) bool
	turn     int // assistant messages in the request, for ids of calls that have none
	chunk    chatChunk
	calls    []chatCall
	usage    *model.Usage
	reason   string
	model    string // the model that answers, as the chunks name it
	finished bool   // a finish_reason was seen
	refused  bool   // a refusal was yielded
}

// chatCall is a tool call being assembled from its deltas.
type chatCall struct {
	index    int
	id, name string
	args     []byte
}

// chatChunk holds the fields of a chunk that Stream reads. It is reused from chunk to
// chunk, so that its slices keep their memory.
type chatChunk struct {
	Model   string          `json:"model"`
	Choices []chatChoice    `json:"choices"`
	Usage   *chatUsage      `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

type chatChoice struct {
	Index int `json:"index"`
	Delta struct {
		Content   string          `json:"content"`
		ToolCalls []chatCallDelta `json:"tool_calls"`
		Refusal   string          `json:"refusal"`
		// Local servers stream reasoning in one of these (llama.cpp, vLLM and
		// DeepSeek in reasoning_content; Ollama in reasoning).
		ReasoningContent string `json:"reasoning_content"`
		Reasoning        string `json:"reasoning"`
	} `json:"delta"`
	FinishReason string `json:"finish_reason"`
}

type chatCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// event handles the data of one event and reports whether the stream goes on.
func (s *chatStream) event(data []byte) bool {
	if string(data) == "[DONE]" {
		s.finish()
		return false
	}
	if text, ok := chatContent(data); ok {
		return text == "" || s.yield(model.Chunk{Text: text}, nil)
	}
	c := &s.chunk
	choices := c.Choices[:cap(c.Choices)]
	clear(choices) // encoding/json does not zero the elements it decodes into
	*c = chatChunk{Choices: choices[:0]}
	if err := json.Unmarshal(data, c); err != nil {
		return true // not a chunk: ignored
	}
	if isError(c.Error) {
		s.yield(model.Chunk{}, streamError(s.header, data))
		return false
	}
	if s.model == "" {
		s.model = c.Model
	}
	if u := c.Usage; u != nil {
		s.usage = usage(u.PromptTokens, u.CompletionTokens, u.TotalTokens)
		if d := u.PromptTokensDetails; d != nil {
			s.usage.CacheReadTokens = d.CachedTokens
		}
		if d := u.CompletionTokensDetails; d != nil {
			s.usage.ReasoningTokens = d.ReasoningTokens
		}
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index != 0 {
			continue // only the first choice is asked for
		}
		for _, d := range ch.Delta.ToolCalls {
			s.addCall(&d)
		}
		if ch.FinishReason != "" {
			s.reason, s.finished = ch.FinishReason, true
		}
		if r := ch.Delta.ReasoningContent + ch.Delta.Reasoning; r != "" && !s.yield(model.Chunk{Reasoning: r}, nil) {
			return false
		}
		if r := ch.Delta.Refusal; r != "" {
			s.refused = true
			if !s.yield(model.Chunk{Refusal: r}, nil) {
				return false
			}
		}
		if ch.Delta.Content != "" && !s.yield(model.Chunk{Text: ch.Delta.Content}, nil) {
			return false
		}
	}
	return true
}

// addCall adds a tool-call delta to the call of its index.
func (s *chatStream) addCall(d *chatCallDelta) {
	for i := range s.calls {
		if c := &s.calls[i]; c.index == d.Index {
			if c.id == "" {
				c.id = d.ID
			}
			if c.name == "" {
				c.name = d.Function.Name
			}
			c.args = append(c.args, d.Function.Arguments...)
			return
		}
	}
	s.calls = append(s.calls, chatCall{index: d.Index, id: d.ID, name: d.Function.Name, args: []byte(d.Function.Arguments)})
}

// finish yields the last chunk: the tool calls, the usage and the finish reason.
func (s *chatStream) finish() {
	out := model.Chunk{Usage: s.usage, Model: s.model}
	for i, c := range s.calls {
		id := c.id
		if id == "" {
			id = "call_" + strconv.Itoa(s.turn) + "_" + strconv.Itoa(i)
		}
		out.ToolCalls = append(out.ToolCalls, model.ToolCall{ID: id, Name: c.name, Arguments: arguments(string(c.args))})
	}
	switch {
	case len(out.ToolCalls) > 0 && (s.reason == "" || s.reason == "stop"):
		out.FinishReason = model.FinishToolCalls // Ollama and others say "stop"
	case s.refused && (s.reason == "" || s.reason == "stop"):
		out.FinishReason = model.FinishRefusal
	case s.reason == "" || s.reason == "stop":
		out.FinishReason = model.FinishStop
	case s.reason == "tool_calls" || s.reason == "function_call":
		out.FinishReason = model.FinishToolCalls
	case s.reason == "length":
		out.FinishReason = model.FinishLength
	default:
		out.FinishReason = model.FinishReason(s.reason)
	}
	s.yield(out, nil)
}

// assistantTurns counts the assistant messages of req.
func assistantTurns(req *model.Request) int {
	n := 0
	if req != nil {
		for i := range req.Messages {
			if req.Messages[i].Role == model.RoleAssistant {
				n++
			}
		}
	}
	return n
}
