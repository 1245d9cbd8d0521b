package openaitest

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ResponsesStream builds a Responses API event stream in the shapes of the recorded
// streams in PROTOCOLS.md §1.5–1.7: event: and data: lines, sequence numbers from 0,
// the response's lifecycle around its output items. Its methods chain; Reply ends
// the stream with response.completed.
type ResponsesStream struct {
	b      strings.Builder
	seq    int
	output int // output items added
}

// NewResponsesStream starts a stream: response.created and response.in_progress.
func NewResponsesStream() *ResponsesStream {
	s := &ResponsesStream{}
	s.event("response.created", `"response":`+responseObject("in_progress", ""))
	s.event("response.in_progress", `"response":`+responseObject("in_progress", ""))
	return s
}

func (s *ResponsesStream) event(typ, fields string) {
	s.b.WriteString("event: " + typ + "\ndata: {\"type\":" + quote(typ) + "," + fields + ",\"sequence_number\":" + strconv.Itoa(s.seq) + "}\n\n")
	s.seq++
}

func responseObject(status, usage string) string {
	if usage == "" {
		usage = "null"
	}
	return `{"id":"resp_openaitest","object":"response","created_at":1767225600,"status":"` + status +
		`","error":null,"incomplete_details":null,"model":"gpt-5.2-2025-12-11","output":[],"parallel_tool_calls":true,"store":false,"tool_choice":"auto","tools":[],"usage":` + usage + `}`
}

// Reasoning adds a reasoning item whose summary text streams in pieces
// (response.reasoning_summary_text.delta events). Its output_item.done carries the
// item's encrypted_content (EncryptedContent of its id) when the request asked for
// it (include "reasoning.encrypted_content"), and null otherwise, as the API does.
func (s *ResponsesStream) Reasoning(pieces ...string) *ResponsesStream {
	i, id := s.item("rs")
	s.event("response.output_item.added", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"reasoning","summary":[],"encrypted_content":null}`)
	s.event("response.reasoning_summary_part.added", `"item_id":"`+id+`","output_index":`+i+`,"summary_index":0,"part":{"type":"summary_text","text":""}`)
	for _, p := range pieces {
		s.event("response.reasoning_summary_text.delta", `"item_id":"`+id+`","output_index":`+i+`,"summary_index":0,"delta":`+quote(p))
	}
	all := quote(strings.Join(pieces, ""))
	s.event("response.reasoning_summary_text.done", `"item_id":"`+id+`","output_index":`+i+`,"summary_index":0,"text":`+all)
	s.event("response.reasoning_summary_part.done", `"item_id":"`+id+`","output_index":`+i+`,"summary_index":0,"part":{"type":"summary_text","text":`+all+`}`)
	s.event("response.output_item.done", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"reasoning","summary":[{"type":"summary_text","text":`+all+`}],"encrypted_content":`+quote(EncryptedContent(id))+`}`)
	return s
}

// FunctionCall adds a function_call item calling name with the JSON arguments
// args, which stream in two pieces; its call_id is "call_" and its item's id.
func (s *ResponsesStream) FunctionCall(name, args string) *ResponsesStream {
	i, id := s.item("fc")
	call := "call_" + id
	s.event("response.output_item.added", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"function_call","status":"in_progress","arguments":"","call_id":"`+call+`","name":`+quote(name)+`}`)
	half := len(args) / 2
	for _, p := range []string{args[:half], args[half:]} {
		s.event("response.function_call_arguments.delta", `"delta":`+quote(p)+`,"item_id":"`+id+`","output_index":`+i)
	}
	s.event("response.function_call_arguments.done", `"arguments":`+quote(args)+`,"item_id":"`+id+`","output_index":`+i)
	s.event("response.output_item.done", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"function_call","status":"completed","arguments":`+quote(args)+`,"call_id":"`+call+`","name":`+quote(name)+`}`)
	return s
}

// encryptedPrefix starts the encrypted content of the server's reasoning items.
const encryptedPrefix = "gAAAAB-openaitest-"

// EncryptedContent is the encrypted content the server gives the reasoning item
// with the given id, and accepts back in a request's input.
func EncryptedContent(itemID string) string { return encryptedPrefix + itemID }

// Text adds a message item whose output text streams in pieces.
func (s *ResponsesStream) Text(pieces ...string) *ResponsesStream {
	return s.message("output_text", "text", "response.output_text", pieces)
}

// Refusal adds a message item whose refusal streams in pieces
// (response.refusal.delta events), as the API answers a request it refuses under
// structured outputs.
func (s *ResponsesStream) Refusal(pieces ...string) *ResponsesStream {
	return s.message("refusal", "refusal", "response.refusal", pieces)
}

func (s *ResponsesStream) message(part, field, prefix string, pieces []string) *ResponsesStream {
	i, id := s.item("msg")
	s.event("response.output_item.added", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"message","status":"in_progress","content":[],"role":"assistant"}`)
	empty := `{"type":"` + part + `","` + field + `":""}`
	if part == "output_text" {
		empty = `{"type":"output_text","annotations":[],"logprobs":[],"text":""}`
	}
	s.event("response.content_part.added", `"content_index":0,"item_id":"`+id+`","output_index":`+i+`,"part":`+empty)
	logprobs := ""
	if part == "output_text" {
		logprobs = `,"logprobs":[]`
	}
	for _, p := range pieces {
		s.event(prefix+".delta", `"content_index":0,"delta":`+quote(p)+`,"item_id":"`+id+`"`+logprobs+`,"output_index":`+i)
	}
	all := quote(strings.Join(pieces, ""))
	s.event(prefix+".done", `"content_index":0,"item_id":"`+id+`"`+logprobs+`,"output_index":`+i+`,"`+field+`":`+all)
	full := `{"type":"` + part + `","` + field + `":` + all + `}`
	if part == "output_text" {
		full = `{"type":"output_text","annotations":[],"logprobs":[],"text":` + all + `}`
	}
	s.event("response.content_part.done", `"content_index":0,"item_id":"`+id+`","output_index":`+i+`,"part":`+full)
	s.event("response.output_item.done", `"output_index":`+i+`,"item":{"id":"`+id+`","type":"message","status":"completed","content":[`+full+`],"role":"assistant"}`)
	return s
}

func (s *ResponsesStream) item(prefix string) (index, id string) {
	index = strconv.Itoa(s.output)
	id = prefix + "_openaitest" + index
	s.output++
	return index, id
}

// Reply ends the stream with response.completed (usage 10 in, 5 out) and returns
// it as a Reply.
func (s *ResponsesStream) Reply() Reply {
	s.event("response.completed", `"response":`+responseObject("completed",
		`{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}`))
	return Stream(s.b.String())
}

// ResponsesText returns a Reply streaming a Responses text answer in pieces.
func ResponsesText(pieces ...string) Reply { return NewResponsesStream().Text(pieces...).Reply() }

// ChatText returns a Reply streaming a Chat Completions answer in the shape of
// PROTOCOLS.md §2.2: a role chunk, a chunk per piece, the finish chunk, the usage
// chunk and [DONE]. A refusal, if not empty, streams in delta.refusal instead.
func ChatText(refusal string, pieces ...string) Reply {
	var b strings.Builder
	chunk := func(choice string) {
		b.WriteString(`data: {"id":"chatcmpl-openaitest","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[` + choice + `],"usage":null}` + "\n\n")
	}
	chunk(`{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`)
	if refusal != "" {
		chunk(`{"index":0,"delta":{"refusal":` + quote(refusal) + `},"logprobs":null,"finish_reason":null}`)
	}
	for _, p := range pieces {
		chunk(`{"index":0,"delta":{"content":` + quote(p) + `},"logprobs":null,"finish_reason":null}`)
	}
	chunk(`{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}`)
	b.WriteString(`data: {"id":"chatcmpl-openaitest","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return Stream(b.String())
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
