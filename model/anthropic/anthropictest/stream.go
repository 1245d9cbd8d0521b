package anthropictest

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Defaults of the streams Text and ToolUse build.
const (
	// MessageID is the id of the messages Text and ToolUse stream.
	MessageID = "msg_01XFDUDYJgAACzvnptvVoYEL"
	// Model is the model the messages Text and ToolUse stream name.
	Model = "claude-sonnet-4-5"
	// InputTokens is the input token count of the messages Text and ToolUse stream.
	InputTokens = 11
)

// Stream builds the body of a streamed response, one event at a time, in the shapes
// the Messages API sends (PROTOCOLS.md §3.3): every event has an "event:" line naming
// its type, then a "data:" line with the event as compact JSON, then a blank line.
// Content block indexes are counted for you. Its methods return the Stream, so that
// calls chain; Reply turns it into a Reply.
type Stream struct {
	buf    bytes.Buffer
	blocks int // content blocks started
	open   int // index of the block being streamed
}

// NewStream starts a stream with the message_start event of a message with the
// given id, model and input token count.
func NewStream(id, model string, inputTokens int) *Stream {
	s := &Stream{}
	s.Event("message_start", `{"type":"message_start","message":{"id":`+quote(id)+
		`,"type":"message","role":"assistant","model":`+quote(model)+
		`,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`+
		strconv.Itoa(inputTokens)+`,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}`)
	return s
}

// Event appends an event of any type with data written as is, on one line.
func (s *Stream) Event(typ, data string) *Stream {
	s.buf.WriteString("event: ")
	s.buf.WriteString(typ)
	s.buf.WriteString("\ndata: ")
	s.buf.WriteString(data)
	s.buf.WriteString("\n\n")
	return s
}

// Ping appends a ping event, written as the API writes it.
func (s *Stream) Ping() *Stream {
	return s.Event("ping", `{"type": "ping"}`)
}

// StartText appends the content_block_start of a text block.
func (s *Stream) StartText() *Stream {
	return s.start(`{"type":"text","text":""}`)
}

// StartToolUse appends the content_block_start of a tool_use block; its input is
// always {} at the start.
func (s *Stream) StartToolUse(id, name string) *Stream {
	return s.start(`{"type":"tool_use","id":` + quote(id) + `,"name":` + quote(name) + `,"input":{}}`)
}

func (s *Stream) start(block string) *Stream {
	s.open = s.blocks
	s.blocks++
	return s.Event("content_block_start", `{"type":"content_block_start","index":`+strconv.Itoa(s.open)+`,"content_block":`+block+`}`)
}

// TextDelta appends a text_delta to the open block.
func (s *Stream) TextDelta(text string) *Stream {
	return s.delta(`{"type":"text_delta","text":` + quote(text) + `}`)
}

// InputJSONDelta appends an input_json_delta, a fragment of a tool's input, to the
// open block.
func (s *Stream) InputJSONDelta(fragment string) *Stream {
	return s.delta(`{"type":"input_json_delta","partial_json":` + quote(fragment) + `}`)
}

func (s *Stream) delta(delta string) *Stream {
	return s.Event("content_block_delta", `{"type":"content_block_delta","index":`+strconv.Itoa(s.open)+`,"delta":`+delta+`}`)
}

// StopBlock appends the content_block_stop of the open block.
func (s *Stream) StopBlock() *Stream {
	return s.Event("content_block_stop", `{"type":"content_block_stop","index":`+strconv.Itoa(s.open)+`}`)
}

// TextBlock appends a whole text block: its start, a text_delta per piece, its stop.
func (s *Stream) TextBlock(pieces ...string) *Stream {
	s.StartText()
	for _, p := range pieces {
		s.TextDelta(p)
	}
	return s.StopBlock()
}

// ToolUseBlock appends a whole tool_use block: its start, an input_json_delta per
// fragment (the API's first one is often ""), its stop.
func (s *Stream) ToolUseBlock(id, name string, fragments ...string) *Stream {
	s.StartToolUse(id, name)
	for _, f := range fragments {
		s.InputJSONDelta(f)
	}
	return s.StopBlock()
}

// ThinkingBlock appends a whole thinking block, as the API streams it with extended
// thinking on: its start, a thinking_delta per piece, a signature_delta, its stop.
func (s *Stream) ThinkingBlock(signature string, pieces ...string) *Stream {
	s.start(`{"type":"thinking","thinking":"","signature":""}`)
	for _, p := range pieces {
		s.delta(`{"type":"thinking_delta","thinking":` + quote(p) + `}`)
	}
	s.delta(`{"type":"signature_delta","signature":` + quote(signature) + `}`)
	return s.StopBlock()
}

// Error appends an error event, as the API sends when it fails mid-stream (such as
// errType "overloaded_error" with message "Overloaded").
func (s *Stream) Error(errType, message string) *Stream {
	return s.Event("error", errorBody(errType, message, ""))
}

// End appends the message_delta with the stop reason ("end_turn", "tool_use",
// "max_tokens", ...) and the output token count, then message_stop.
func (s *Stream) End(stopReason string, outputTokens int) *Stream {
	s.Event("message_delta", `{"type":"message_delta","delta":{"stop_reason":`+quote(stopReason)+
		`,"stop_sequence":null},"usage":{"output_tokens":`+strconv.Itoa(outputTokens)+`}}`)
	return s.Event("message_stop", `{"type":"message_stop"}`)
}

// String returns the stream's bytes.
func (s *Stream) String() string { return s.buf.String() }

// Reply returns a Reply that sends the stream.
func (s *Stream) Reply() Reply { return SSE(s.String()) }

// Text returns a Reply that streams a text answer: one text block with a
// text_delta per piece (and a ping after its start, as the API sends), stop reason
// end_turn.
func Text(pieces ...string) Reply {
	s := NewStream(MessageID, Model, InputTokens).StartText().Ping()
	for _, p := range pieces {
		s.TextDelta(p)
	}
	return s.StopBlock().End("end_turn", len(pieces)+1).Reply()
}

// ToolUse returns a Reply that streams one tool call: a tool_use block whose input
// comes in the given fragments, stop reason tool_use.
func ToolUse(id, name string, fragments ...string) Reply {
	s := NewStream(MessageID, Model, InputTokens).ToolUseBlock(id, name, fragments...)
	return s.End("tool_use", len(fragments)+1).Reply()
}

// quote returns s as a JSON string, with <, > and & as they are.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
