package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/internal/apicall"
	"github.com/kern-dev/kern/model/internal/sse"
)

// maxBlocks bounds the content block index a stream may use.
const maxBlocks = 1 << 12

// stream decodes one response's events into chunks.
type stream struct {
	ctx    context.Context
	done   <-chan struct{} // ctx.Done()
	header http.Header
	events *sse.Reader

	blocks  []block // by content block index
	calls   []model.ToolCall
	output  string // the name of the tool that carries a structured output, if any
	answer  bool   // the output tool was called: the answer came as its input
	think   []model.Thinking
	usage   model.Usage
	stop    string // the stop_reason of message_delta
	model   string // the model of message_start
	scratch []byte // unescaped text of the current delta
}

// block is the state of one content block.
type block struct {
	toolUse bool // a tool_use block, whose input is being assembled
	output  bool // the tool_use block of the output tool: its input is the answer
	think   bool // a thinking block
	id      string
	name    string
	input   []byte // the concatenated partial_json; a thinking block's signature
	text    []byte // a thinking block's text
}

func newStream(ctx context.Context, resp *http.Response) *stream {
	return &stream{ctx: ctx, done: ctx.Done(), header: resp.Header, events: sse.NewReader(resp.Body)}
}

// run reads events until message_stop, an error, or the consumer stops, and yields
// the chunks they make. The events are told apart by their event: lines; events
// without one, and event types and content blocks it does not know, are skipped.
func (s *stream) run(yield func(model.Chunk, error) bool) {
	for {
		ev, err := s.events.Next()
		if err != nil {
			yield(model.Chunk{}, s.readError(err))
			return
		}
		switch string(ev.Type) {
		case "content_block_delta":
			c, err := s.delta(ev.Data)
			if err != nil {
				yield(model.Chunk{}, err)
				return
			}
			if c.Text == "" && c.Reasoning == "" {
				continue
			}
			select {
			case <-s.done:
				yield(model.Chunk{}, s.ctx.Err()) // deliver nothing more once cancelled
				return
			default:
			}
			if !yield(c, nil) {
				return
			}
		case "message_start":
			err = s.messageStart(ev.Data)
		case "content_block_start":
			err = s.blockStart(ev.Data)
		case "content_block_stop":
			var text string
			text, err = s.blockStop(ev.Data)
			if err == nil && text != "" && !yield(model.Chunk{Text: text}, nil) {
				return
			}
		case "message_delta":
			err = s.messageDelta(ev.Data)
		case "message_stop":
			s.drain()
			if err := s.ctx.Err(); err != nil {
				yield(model.Chunk{}, err)
				return
			}
			yield(s.final(), nil)
			return
		case "error":
			e := apicall.ParseError(0, s.header, ev.Data)
			yield(model.Chunk{}, fmt.Errorf("anthropic: error event in stream: %w", e))
			return
		}
		if err != nil {
			yield(model.Chunk{}, err)
			return
		}
	}
}

// readError is the error for a stream that ended, or failed, before message_stop.
func (s *stream) readError(err error) error {
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err == io.EOF {
		return fmt.Errorf("anthropic: %w", model.ErrStreamCut)
	}
	if errors.Is(err, sse.ErrTooLarge) {
		return fmt.Errorf("anthropic: read stream: %w", err)
	}
	return fmt.Errorf("anthropic: %w: %w", model.ErrStreamCut, err)
}

// drain reads what follows message_stop, which is normally the end of the body at
// once, so that the HTTP connection can be reused.
func (s *stream) drain() {
	s.events.Next()
}

// final returns the last chunk: tool calls, usage and finish reason.
func (s *stream) final() model.Chunk {
	u := s.usage
	u.TotalTokens = u.InputTokens + u.OutputTokens
	return model.Chunk{ToolCalls: s.calls, Usage: &u, FinishReason: s.finishReason(), Thinking: s.think, Model: s.model}
}

// finishReason maps the stop_reason onto a model.FinishReason. Reasons without a
// provider-neutral equivalent (refusal, pause_turn, and any added later) are passed
// on as they are; a message without one finished with its tool calls if it made any.
func (s *stream) finishReason() model.FinishReason {
	switch s.stop {
	case "end_turn", "stop_sequence":
		return model.FinishStop
	case "tool_use":
		if len(s.calls) == 0 && s.answer {
			return model.FinishStop // the only tool called was the output tool
		}
		return model.FinishToolCalls
	case "max_tokens", "model_context_window_exceeded":
		return model.FinishLength
	case "":
		if len(s.calls) > 0 {
			return model.FinishToolCalls
		}
		return model.FinishStop
	}
	return model.FinishReason(s.stop)
}

// wireUsage is the usage object of message_start and message_delta.
type wireUsage struct {
	InputTokens              *int `json:"input_tokens"`
	OutputTokens             *int `json:"output_tokens"`
	CacheCreationInputTokens int  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int  `json:"cache_read_input_tokens"`
}

// messageStart takes the input tokens from message_start. Tokens written to or read
// from the prompt cache count as input tokens: the API's input_tokens leaves them out.
func (s *stream) messageStart(data []byte) error {
	var ev struct {
		Message struct {
			Model string    `json:"model"`
			Usage wireUsage `json:"usage"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return decodeError("message_start", err)
	}
	s.model = ev.Message.Model
	u := ev.Message.Usage
	if u.InputTokens != nil {
		s.usage.InputTokens = *u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
		s.usage.CacheReadTokens, s.usage.CacheWriteTokens = u.CacheReadInputTokens, u.CacheCreationInputTokens
	}
	if u.OutputTokens != nil {
		s.usage.OutputTokens = *u.OutputTokens
	}
	return nil
}

// messageDelta takes the stop reason and the output tokens, a running total, from
// message_delta.
func (s *stream) messageDelta(data []byte) error {
	var ev struct {
		Delta struct {
			StopReason *string `json:"stop_reason"`
		} `json:"delta"`
		Usage wireUsage `json:"usage"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return decodeError("message_delta", err)
	}
	if r := ev.Delta.StopReason; r != nil {
		s.stop = *r
	}
	if n := ev.Usage.OutputTokens; n != nil {
		s.usage.OutputTokens = *n
	}
	if u := ev.Usage; u.InputTokens != nil { // cumulative counts, when the API sends them here
		s.usage.InputTokens = *u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
		s.usage.CacheReadTokens, s.usage.CacheWriteTokens = u.CacheReadInputTokens, u.CacheCreationInputTokens
	}
	return nil
}

// blockStart records a tool_use block's id and name; other blocks need no state.
func (s *stream) blockStart(data []byte) error {
	var ev struct {
		Index        int `json:"index"`
		ContentBlock struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Name string `json:"name"`
			Data string `json:"data"`
		} `json:"content_block"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return decodeError("content_block_start", err)
	}
	switch cb := ev.ContentBlock; cb.Type {
	case "tool_use":
		b, err := s.block(ev.Index)
		if err != nil {
			return err
		}
		*b = block{toolUse: true, output: s.output != "" && cb.Name == s.output, id: cb.ID, name: cb.Name}
	case "thinking":
		b, err := s.block(ev.Index)
		if err != nil {
			return err
		}
		*b = block{think: true}
	case "redacted_thinking":
		s.think = append(s.think, model.Thinking{Redacted: cb.Data})
	}
	return nil
}

// blockStop completes a tool_use block: its call's arguments are the concatenated
// input_json_delta fragments, or {} when there were none. They are passed on as the
// model wrote them, even if they are not valid JSON (a response cut by max_tokens
// can end inside them), so that the tool can tell the model what was wrong. The
// input of the output tool is the answer: it is returned as text, not as a call. A
// thinking block is kept for the final chunk.
func (s *stream) blockStop(data []byte) (string, error) {
	i, ok := scanIndex(data)
	if !ok {
		var ev struct {
			Index int `json:"index"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", decodeError("content_block_stop", err)
		}
		i = ev.Index
	}
	if i < 0 || i >= len(s.blocks) {
		return "", nil
	}
	b := &s.blocks[i]
	defer func() { *b = block{} }()
	if b.think {
		s.think = append(s.think, model.Thinking{Text: string(b.text), Signature: string(b.input)})
		return "", nil
	}
	if !b.toolUse {
		return "", nil
	}
	args := json.RawMessage(emptyObject)
	if !isBlank(b.input) {
		args = json.RawMessage(b.input)
	}
	if b.output {
		s.answer = true
		return string(args), nil
	}
	s.calls = append(s.calls, model.ToolCall{ID: b.id, Name: b.name, Arguments: args})
	return "", nil
}

// delta applies a content_block_delta and returns the chunk it makes, if any: text
// or reasoning. Deltas of tool inputs and signatures are kept in their block;
// others (citations) are skipped.
func (s *stream) delta(data []byte) (model.Chunk, error) {
	d, ok := scanDelta(data)
	if !ok {
		var err error
		if d, err = decodeDelta(data); err != nil {
			return model.Chunk{}, err
		}
	}
	switch string(d.typ) {
	case "text_delta":
		if len(d.value) == 0 {
			return model.Chunk{}, nil
		}
		if !d.escaped {
			return model.Chunk{Text: string(d.value)}, nil
		}
		s.scratch = unescape(s.scratch[:0], d.value)
		return model.Chunk{Text: string(s.scratch)}, nil
	case "input_json_delta":
		b, err := s.block(d.index)
		if err != nil {
			return model.Chunk{}, err
		}
		if d.escaped {
			b.input = unescape(b.input, d.value)
		} else {
			b.input = append(b.input, d.value...)
		}
	case "thinking_delta", "signature_delta":
		return s.thinking(data)
	}
	return model.Chunk{}, nil
}

// thinking applies a thinking_delta or a signature_delta, which the scanner does not
// read, and returns the reasoning a thinking_delta adds.
func (s *stream) thinking(data []byte) (model.Chunk, error) {
	var ev struct {
		Index int `json:"index"`
		Delta struct {
			Type      string `json:"type"`
			Thinking  string `json:"thinking"`
			Signature string `json:"signature"`
		} `json:"delta"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return model.Chunk{}, decodeError("content_block_delta", err)
	}
	b, err := s.block(ev.Index)
	if err != nil {
		return model.Chunk{}, err
	}
	if !b.think {
		return model.Chunk{}, nil
	}
	b.text = append(b.text, ev.Delta.Thinking...)
	b.input = append(b.input, ev.Delta.Signature...)
	return model.Chunk{Reasoning: ev.Delta.Thinking}, nil
}

// block returns the state of content block i, growing the table as needed.
func (s *stream) block(i int) (*block, error) {
	if i < 0 || i >= maxBlocks {
		return nil, fmt.Errorf("anthropic: content block index %d out of range", i)
	}
	for len(s.blocks) <= i {
		s.blocks = append(s.blocks, block{})
	}
	return &s.blocks[i], nil
}

// decodeDelta decodes a content_block_delta with encoding/json, for the data
// scanDelta does not take.
func decodeDelta(data []byte) (deltaFields, error) {
	var ev struct {
		Index int `json:"index"`
		Delta struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			PartialJSON string `json:"partial_json"`
		} `json:"delta"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return deltaFields{}, decodeError("content_block_delta", err)
	}
	d := deltaFields{index: ev.Index, typ: []byte(ev.Delta.Type), value: []byte(ev.Delta.Text)}
	if ev.Delta.Type == "input_json_delta" {
		d.value = []byte(ev.Delta.PartialJSON)
	}
	return d, nil
}

func decodeError(event string, err error) error {
	return fmt.Errorf("anthropic: decode %s event: %w", event, err)
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
