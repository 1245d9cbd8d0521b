package openai

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/internal/sse"
)

// Responses is a model served by the Responses API (POST {base}/responses). It keeps
// no state between requests: every request carries the whole conversation, with
// "store": false. With a reasoning effort (other than "none"), a request asks for
// the reasoning's encrypted content (include "reasoning.encrypted_content"), and the
// reasoning items of an assistant message are sent back with it (model.Thinking's
// Item), so that a model keeps its reasoning across the requests of a tool loop
// although the server stores nothing. A Responses is safe for concurrent use.
type Responses struct {
	cfg *config
}

// NewResponses returns the model named model (such as "gpt-5.2") of the Responses
// API. The environment variables OPENAI_BASE_URL and OPENAI_API_KEY are read now;
// opts override them.
func NewResponses(model string, opts ...Option) *Responses {
	return &Responses{cfg: newConfig(model, opts)}
}

// Provider returns "openai".
func (r *Responses) Provider() string { return Provider }

// ModelID returns the model's name as given to NewResponses.
func (r *Responses) ModelID() string { return r.cfg.model }

// Stream sends req and streams the answer: a chunk per text delta, a chunk per
// function call once its arguments are complete, and a last chunk with the usage and
// the finish reason. A failure reported by the stream (an error event or
// response.failed) ends it with an error classified like an HTTP error of the same
// kind; a stream cut before its terminal event ends with model.ErrStreamCut. When ctx
// is cancelled, Stream closes the connection and yields ctx's error.
func (r *Responses) Stream(ctx context.Context, req *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		if err := check(req, false); err != nil {
			yield(model.Chunk{}, err)
			return
		}
		body, err := encode(r.request(req), req)
		if err != nil {
			yield(model.Chunk{}, fmt.Errorf("openai: encode request: %w", err))
			return
		}
		resp, err := r.cfg.open(ctx, "/responses", body)
		if err != nil {
			yield(model.Chunk{}, err)
			return
		}
		defer resp.Body.Close()
		s := responsesStream{header: resp.Header, yield: yield}
		rd := sse.NewReader(resp.Body)
		for {
			ev, err := rd.Next()
			if err != nil {
				yield(model.Chunk{}, readError(ctx, err))
				return
			}
			if !s.event(ev) {
				return
			}
		}
	}
}

// Check reports, before any request, settings the Responses API does not take (stop
// sequences, a seed, max_output_tokens under 16) and a tool choice the request's tools
// cannot satisfy.
func (r *Responses) Check(req *model.Request) error {
	if err := check(req, false); err != nil || req == nil || len(req.Settings.Extra) == 0 {
		return err
	}
	_, err := encode(r.request(req), req)
	return err
}

// Wire shapes of a Responses request (PROTOCOLS.md §1.2).
type (
	responsesRequest struct {
		Model             string              `json:"model"`
		Instructions      string              `json:"instructions,omitempty"`
		Input             []any               `json:"input"`
		Tools             []responsesTool     `json:"tools,omitempty"`
		ToolChoice        any                 `json:"tool_choice,omitempty"`
		ParallelToolCalls *bool               `json:"parallel_tool_calls,omitempty"`
		Temperature       *float64            `json:"temperature,omitempty"`
		TopP              *float64            `json:"top_p,omitempty"`
		MaxOutputTokens   int                 `json:"max_output_tokens,omitempty"`
		Reasoning         *responsesReasoning `json:"reasoning,omitempty"`
		Text              *responsesText      `json:"text,omitempty"`
		Include           []string            `json:"include,omitempty"`
		Store             bool                `json:"store"`
		Stream            bool                `json:"stream"`
	}
	responsesReasoning struct {
		Effort  string `json:"effort"`
		Summary string `json:"summary,omitempty"`
	}
	responsesText struct {
		Format jsonSchemaFormat `json:"format"`
	}
	// inputMessage is the "easy" message item, sent without a type as the SDK does.
	inputMessage struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	// partsMessage is a message item whose content is parts (text, images, files).
	partsMessage struct {
		Role    string `json:"role"`
		Content []any  `json:"content"`
	}
	functionCallItem struct {
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	functionCallOutputItem struct {
		Type   string `json:"type"`
		CallID string `json:"call_id"`
		Output string `json:"output"`
	}
	responsesTool struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      bool            `json:"strict"`
	}
)

// emptySchema is the parameters of a tool that declares none.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// request builds the request body for req.
func (r *Responses) request(req *model.Request) *responsesRequest {
	out := &responsesRequest{Model: r.cfg.model, Stream: true}
	if req == nil {
		return out
	}
	out.Instructions = req.Instructions
	out.Input = make([]any, 0, len(req.Messages))
	for _, m := range req.Messages {
		switch m.Role {
		case model.RoleTool:
			out.Input = append(out.Input, functionCallOutputItem{Type: "function_call_output", CallID: m.ToolCallID, Output: m.Content})
		case model.RoleAssistant:
			for _, t := range m.Thinking {
				if t.Item != nil { // each before the item that followed it in the output
					out.Input = append(out.Input, t.Item)
				}
			}
			if m.Content != "" {
				out.Input = append(out.Input, inputMessage{Role: "assistant", Content: m.Content})
			}
			for _, c := range m.ToolCalls {
				out.Input = append(out.Input, functionCallItem{Type: "function_call", CallID: c.ID, Name: c.Name, Arguments: string(arguments(string(c.Arguments)))})
			}
		default:
			if len(m.Attachments) > 0 {
				out.Input = append(out.Input, partsMessage{Role: string(m.Role), Content: responsesParts(&m)})
				continue
			}
			out.Input = append(out.Input, inputMessage{Role: string(m.Role), Content: m.Content})
		}
	}
	for _, d := range req.Tools {
		params := d.Parameters
		if len(params) == 0 {
			params = emptySchema
		}
		// strict is false: strict mode requires every property in "required" and
		// additionalProperties false, and kern's schemas (google/jsonschema-go) leave
		// omitempty fields out of "required", so OpenAI would reject them as strict.
		out.Tools = append(out.Tools, responsesTool{Type: "function", Name: d.Name, Description: d.Description, Parameters: params, Strict: false})
	}
	s := &req.Settings
	out.ToolChoice = toolChoice(s.ToolChoice, false)
	out.ParallelToolCalls = parallel(s, len(req.Tools))
	out.Temperature, out.TopP, out.MaxOutputTokens = s.Temperature, s.TopP, s.MaxTokens
	if e := s.ReasoningEffort; e != "" {
		out.Reasoning = &responsesReasoning{Effort: e}
		if e != "none" {
			out.Reasoning.Summary = "auto" // summaries become reasoning events
			out.Include = []string{includeEncrypted}
		}
	}
	if o := req.Output; o != nil {
		f := schemaFormat(o)
		f.Type = "json_schema"
		out.Text = &responsesText{Format: f}
	}
	return out
}

// includeEncrypted asks for the encrypted content of reasoning items, which a
// request with "store": false must send back for the model to have its reasoning.
const includeEncrypted = "reasoning.encrypted_content"

// responsesStream turns the events of one Responses stream into chunks.
type responsesStream struct {
	header http.Header
	model  string // the model that answered, as the response names it
	yield  func(model.Chunk, error) bool
	calls  []pendingCall
	// reasoning are the reasoning items with encrypted content, to replay.
	reasoning []model.Thinking
	called    bool // a function call was yielded
	refused   bool // a refusal was yielded
	// partText is set by a text delta and cleared by output_text.done, whose text is
	// yielded only if no delta carried it (llama.cpp sends no deltas).
	partText bool
}

// pendingCall is a function call whose arguments are still streaming.
type pendingCall struct {
	itemID, callID, name string
	args                 []byte
}

// responsesEvent holds the fields of the events Stream reads, other than text deltas.
type responsesEvent struct {
	Type      string        `json:"type"`
	Item      *responseItem `json:"item"`
	ItemID    string        `json:"item_id"`
	Delta     string        `json:"delta"`
	Arguments string        `json:"arguments"`
	Text      string        `json:"text"`
	Response  *struct {
		Model             string          `json:"model"`
		Status            string          `json:"status"`
		Error             json.RawMessage `json:"error"`
		IncompleteDetails *struct {
			Reason string `json:"reason"`
		} `json:"incomplete_details"`
		Usage *responsesUsage `json:"usage"`
	} `json:"response"`
	Error json.RawMessage `json:"error"`
}

// responsesUsage is a response's usage (PROTOCOLS.md §1.3).
type responsesUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens     int `json:"cached_tokens"`
		CacheWriteTokens int `json:"cache_write_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// responseItem is an output item: function calls, and reasoning items to replay.
type responseItem struct {
	ID               string `json:"id"`
	Type             string `json:"type"`
	CallID           string `json:"call_id"`
	Name             string `json:"name"`
	Arguments        string `json:"arguments"`
	EncryptedContent string `json:"encrypted_content"`
}

// event handles one event and reports whether the stream goes on.
func (s *responsesStream) event(ev sse.Event) bool {
	typ := ev.Type
	if len(typ) == 0 {
		// The real API names every event; servers that do not put the name first in
		// the JSON are decoded in full below.
		typ, _ = leadingType(ev.Data)
	}
	if string(typ) == "response.output_text.delta" {
		if d, ok := stringField(ev.Data, `"delta":`); ok {
			return s.text(d)
		}
	}
	if string(ev.Data) == "[DONE]" { // not sent by OpenAI; tolerated like the SDK does
		return s.finish(nil, "")
	}
	switch string(typ) {
	case "", "error", "response.output_text.delta", "response.output_text.done",
		"response.output_item.added", "response.output_item.done",
		"response.function_call_arguments.delta", "response.function_call_arguments.done",
		"response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.refusal.delta",
		"response.completed", "response.incomplete", "response.failed":
	default:
		return true // an event Stream has no use for
	}
	var e responsesEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return true // not JSON: ignored like an unknown event
	}
	return s.decoded(&e, ev.Data)
}

// decoded handles one event, decoded as e from data, and reports whether the stream
// goes on.
func (s *responsesStream) decoded(e *responsesEvent, data []byte) bool {
	if isError(e.Error) { // the nested error event, or any event with a top-level error
		s.yield(model.Chunk{}, streamError(s.header, e.Error))
		return false
	}
	switch e.Type {
	case "error": // the flat form of the spec: {"type":"error","code","message","param"}
		s.yield(model.Chunk{}, streamError(s.header, data))
		return false
	case "response.output_text.delta":
		return s.text(e.Delta)
	case "response.reasoning_summary_text.delta", "response.reasoning_text.delta":
		return e.Delta == "" || s.yield(model.Chunk{Reasoning: e.Delta}, nil)
	case "response.refusal.delta":
		s.refused = true
		return e.Delta == "" || s.yield(model.Chunk{Refusal: e.Delta}, nil)
	case "response.output_text.done":
		if s.partText {
			s.partText = false
			return true
		}
		return e.Text == "" || s.yield(model.Chunk{Text: e.Text}, nil)
	case "response.output_item.added":
		if e.Item != nil && e.Item.Type == "function_call" {
			s.calls = append(s.calls, pendingCall{itemID: e.Item.ID, callID: e.Item.CallID, name: e.Item.Name, args: []byte(e.Item.Arguments)})
		}
	case "response.function_call_arguments.delta":
		if c := s.call(e.ItemID); c != nil {
			c.args = append(c.args, e.Delta...)
		}
	case "response.function_call_arguments.done":
		if c := s.call(e.ItemID); c != nil {
			c.args = append(c.args[:0], e.Arguments...)
		}
	case "response.output_item.done":
		if e.Item != nil && e.Item.Type == "function_call" {
			return s.callDone(e.Item)
		}
		if e.Item != nil && e.Item.Type == "reasoning" && e.Item.EncryptedContent != "" {
			s.keepReasoning(data)
		}
	case "response.completed", "response.incomplete", "response.failed":
		return s.terminal(e)
	}
	return true
}

// text yields a text delta.
func (s *responsesStream) text(d string) bool {
	if d == "" {
		return true
	}
	s.partText = true
	return s.yield(model.Chunk{Text: d}, nil)
}

// call returns the pending call of the item id, or the latest one if the server sent
// no item id.
func (s *responsesStream) call(itemID string) *pendingCall {
	for i := len(s.calls) - 1; i >= 0; i-- {
		if itemID == "" || s.calls[i].itemID == itemID {
			return &s.calls[i]
		}
	}
	return nil
}

// callDone yields a completed function call. The item's own fields win over what the
// earlier events said; a server may send only this event (llama.cpp).
func (s *responsesStream) callDone(item *responseItem) bool {
	tc := model.ToolCall{ID: item.CallID, Name: item.Name}
	args := item.Arguments
	if i := s.index(item.ID); i >= 0 {
		c := s.calls[i]
		s.calls = append(s.calls[:i], s.calls[i+1:]...)
		tc.ID, tc.Name = cmp.Or(tc.ID, c.callID), cmp.Or(tc.Name, c.name)
		if args == "" {
			args = string(c.args)
		}
	}
	if tc.ID == "" {
		tc.ID = item.ID
	}
	tc.Arguments = arguments(args)
	s.called = true
	return s.yield(model.Chunk{ToolCalls: []model.ToolCall{tc}}, nil)
}

// index returns the position of the pending call of the item id, or -1.
func (s *responsesStream) index(itemID string) int {
	for i := range s.calls {
		if s.calls[i].itemID == itemID && itemID != "" {
			return i
		}
	}
	return -1
}

// terminal handles response.completed, .incomplete and .failed, which end the stream.
func (s *responsesStream) terminal(e *responsesEvent) bool {
	resp := e.Response
	if e.Type == "response.failed" || (resp != nil && resp.Status == "failed") {
		data := []byte(`{"message":"response failed"}`)
		if resp != nil && isError(resp.Error) {
			data = resp.Error
		}
		s.yield(model.Chunk{}, streamError(s.header, data))
		return false
	}
	var u *model.Usage
	var reason model.FinishReason
	if resp != nil {
		s.model = resp.Model
	}
	if resp != nil && resp.Usage != nil {
		ru := resp.Usage
		u = usage(ru.InputTokens, ru.OutputTokens, ru.TotalTokens)
		u.CacheReadTokens, u.CacheWriteTokens = ru.InputTokensDetails.CachedTokens, ru.InputTokensDetails.CacheWriteTokens
		u.ReasoningTokens = ru.OutputTokensDetails.ReasoningTokens
	}
	if e.Type == "response.incomplete" || (resp != nil && resp.Status == "incomplete") {
		reason = model.FinishLength
		if resp != nil && resp.IncompleteDetails != nil && resp.IncompleteDetails.Reason != "" && resp.IncompleteDetails.Reason != "max_output_tokens" {
			reason = model.FinishReason(resp.IncompleteDetails.Reason)
		}
	}
	return s.finish(u, reason)
}

// keepReasoning keeps the reasoning item of an output_item.done event, data, as it
// is: the completed item is the one to replay (the encrypted content of
// output_item.added may be incomplete).
func (s *responsesStream) keepReasoning(data []byte) {
	var ev struct {
		Item json.RawMessage `json:"item"`
	}
	if json.Unmarshal(data, &ev) == nil {
		s.reasoning = append(s.reasoning, model.Thinking{Item: ev.Item})
	}
}

// finish yields the last chunk and ends the stream. Calls whose output_item.done never
// came are yielded with it.
func (s *responsesStream) finish(u *model.Usage, reason model.FinishReason) bool {
	c := model.Chunk{Usage: u, Thinking: s.reasoning, Model: s.model}
	for _, p := range s.calls {
		c.ToolCalls = append(c.ToolCalls, model.ToolCall{ID: cmp.Or(p.callID, p.itemID), Name: p.name, Arguments: arguments(string(p.args))})
	}
	if reason == "" {
		switch {
		case s.called || len(c.ToolCalls) > 0:
			reason = model.FinishToolCalls
		case s.refused:
			reason = model.FinishRefusal
		default:
			reason = model.FinishStop
		}
	}
	c.FinishReason = reason
	s.yield(c, nil)
	return false
}

// isError reports whether raw is an error object rather than absent or null.
func isError(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}
